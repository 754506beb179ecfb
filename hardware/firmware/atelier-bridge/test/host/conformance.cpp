// A host build of the firmware's protocol core, driven line by line on stdin, so that
// tests/firmware_bridge/test_firmware_conformance.py can check it against the Python side:
//   crc HEX            -> the CRC-16/CCITT-FALSE, 4 hex digits
//   cobs HEX           -> the COBS encoding
//   pack KIND SEQ HEX  -> the frame on the wire, delimiter included
//   feed HEX           -> one line per frame ended: "take SEQ KIND PAYLOAD", "repeat SEQ",
//                         "reject-seq SEQ", "handshake KIND", "ack SEQ" or "reject ERROR"
//   send KIND HEX NOW / acked SEQ / tick NOW / reset NOW -> the Sender's frames and verdicts
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <string>
#include <vector>

#include "../../src/bridge_protocol.h"

using namespace bridge;

static std::vector<uint8_t> unhex(const char* text) {
  std::vector<uint8_t> out;
  for (size_t i = 0; text[i] && text[i + 1]; i += 2) {
    char pair[3] = {text[i], text[i + 1], 0};
    out.push_back(static_cast<uint8_t>(strtoul(pair, nullptr, 16)));
  }
  return out;
}

static void print_hex(const uint8_t* data, size_t len) {
  for (size_t i = 0; i < len; ++i) printf("%02x", data[i]);
}

int main() {
  Deframer deframer;
  Receiver receiver;
  Sender sender(100, 5);
  char line[8192];
  while (fgets(line, sizeof line, stdin)) {
    char command[16] = {0}, a[4096] = {0}, b[4096] = {0}, c[4096] = {0};
    int fields = sscanf(line, "%15s %4095s %4095s %4095s", command, a, b, c);
    if (fields < 1) continue;
    std::string cmd(command);
    if (cmd == "crc") {
      std::vector<uint8_t> data = unhex(fields > 1 ? a : "");
      printf("%04x\n", crc16(data.data(), data.size()));
    } else if (cmd == "cobs") {
      std::vector<uint8_t> data = unhex(fields > 1 ? a : "");
      std::vector<uint8_t> out(data.size() + data.size() / 254 + 2);
      size_t n = cobs_encode(data.data(), data.size(), out.data());
      print_hex(out.data(), n);
      printf("\n");
    } else if (cmd == "pack") {
      std::vector<uint8_t> payload = unhex(fields > 3 ? c : "");
      uint8_t wire[MAX_WIRE];
      size_t n = pack(static_cast<uint8_t>(strtoul(a, nullptr, 16)), static_cast<uint8_t>(strtoul(b, nullptr, 16)),
                      payload.data(), payload.size(), wire);
      print_hex(wire, n);
      printf("\n");
    } else if (cmd == "feed") {
      std::vector<uint8_t> data = unhex(fields > 1 ? a : "");
      for (uint8_t byte : data) {
        Packet packet;
        FrameError error;
        if (!deframer.feed(byte, packet, error)) continue;
        if (error != FRAME_OK) {
          printf("reject %s\n", frame_error_name(error));
        } else if (packet.kind == ACK) {
          printf("ack %u\n", packet.seq);
        } else if ((packet.seq == 0) != is_handshake(packet.kind)) {
          printf("reject-kind %u\n", packet.seq);
        } else if (packet.seq == 0) {
          if (packet.kind == HELLO) receiver.reset();
          printf("handshake %02x\n", packet.kind);
        } else {
          switch (receiver.judge(packet.seq)) {
            case TAKE:
              receiver.taken(packet.seq);
              printf("take %u %02x ", packet.seq, packet.kind);
              print_hex(packet.payload, packet.len);
              printf("\n");
              break;
            case REPEAT: printf("repeat %u\n", packet.seq); break;
            case REJECT: printf("reject-seq %u\n", packet.seq); break;
          }
        }
      }
      printf("end\n");
    } else if (cmd == "send") {
      std::vector<uint8_t> payload = unhex(b);
      bool started = sender.start(static_cast<uint8_t>(strtoul(a, nullptr, 16)), payload.data(), payload.size(),
                                  static_cast<uint32_t>(strtoul(c, nullptr, 10)));
      if (started) print_hex(sender.frame(), sender.length());
      printf("%s\n", started ? "" : "busy");
    } else if (cmd == "acked") {
      printf("%s\n", sender.acked(static_cast<uint8_t>(strtoul(a, nullptr, 10))) ? "yes" : "no");
    } else if (cmd == "tick") {
      static const char* names[] = {"idle", "waiting", "resend", "gave-up"};
      Sender::Tick tick = sender.tick(static_cast<uint32_t>(strtoul(a, nullptr, 10)));
      printf("%s", names[tick]);
      if (tick == Sender::RESEND) {
        printf(" ");
        print_hex(sender.frame(), sender.length());
      }
      printf("\n");
    } else if (cmd == "reset") {
      sender.reset(static_cast<uint32_t>(strtoul(a, nullptr, 10)));
      printf("ok\n");
    }
    fflush(stdout);
  }
  return 0;
}
