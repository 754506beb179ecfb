// The Atelier Access bridge protocol, version 1.0: the microcontroller's side.
// docs/firmware-protocol.md is the specification; firmware_bridge/ is the gateway's side.
//
// Portable C++11, no Arduino, no heap: compiled for the ESP32 by PlatformIO and for the
// host by tests/firmware_bridge/test_firmware_conformance.py, which checks it byte for
// byte against the Python implementation.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace bridge {

const uint8_t PROTOCOL_MAJOR = 1;
const uint8_t PROTOCOL_MINOR = 0;
const size_t MAX_PAYLOAD = 64;
const size_t MAX_PACKET = 2 + MAX_PAYLOAD + 2;  // type, seq, payload, CRC
const size_t MAX_ENCODED = MAX_PACKET + 1;      // COBS adds one byte per 254
const size_t MAX_WIRE = MAX_ENCODED + 1;        // and the 0x00 delimiter

enum Kind : uint8_t {
  ACK = 0x01,
  PING = 0x02,
  HELLO = 0x10,
  HELLO_REPLY = 0x11,
  ANNOUNCE = 0x12,
  SWITCH = 0x20,
  INDICATE = 0x21,
  BADGE = 0x30,
  BUTTON = 0x31,
  CURRENT = 0x32,
};

inline bool is_handshake(uint8_t kind) { return kind == HELLO || kind == HELLO_REPLY || kind == ANNOUNCE; }

// The seq after `seq`: 1..255, then 1 again (0 belongs to the handshake).
inline uint8_t after(uint8_t seq) { return static_cast<uint8_t>(seq % 255 + 1); }

// CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no final XOR; check 0x29B1.
uint16_t crc16(const uint8_t* data, size_t len, uint16_t crc = 0xFFFF);

// COBS (Cheshire & Baker). encode: returns the encoded length (no delimiter); `out` holds
// len + len / 254 + 1 bytes. decode: returns the decoded length, or -1 if it is not COBS.
size_t cobs_encode(const uint8_t* in, size_t len, uint8_t* out);
int cobs_decode(const uint8_t* in, size_t len, uint8_t* out, size_t capacity);

struct Packet {
  uint8_t kind;
  uint8_t seq;
  uint8_t payload[MAX_PAYLOAD];
  size_t len;
};

// The bytes on the wire for a packet, delimiter included; returns their count (0 if the
// payload is too long). `wire` holds MAX_WIRE bytes.
size_t pack(uint8_t kind, uint8_t seq, const uint8_t* payload, size_t len, uint8_t* wire);

enum FrameError { FRAME_OK = 0, FRAME_COBS, FRAME_SHORT, FRAME_LONG, FRAME_CRC };
const char* frame_error_name(FrameError error);

// One frame, without its delimiter, into `packet`.
FrameError unpack(const uint8_t* encoded, size_t len, Packet& packet);

// Bytes in, packets out: feed() returns true when a frame ended; then `error` says
// whether `packet` holds it (FRAME_OK) or why it was rejected.
class Deframer {
 public:
  bool feed(uint8_t byte, Packet& packet, FrameError& error);
  void reset() { count_ = 0; discarding_ = false; }

 private:
  uint8_t buffer_[MAX_ENCODED];
  size_t count_ = 0;
  bool discarding_ = false;
};

// The receiving rule: take the seq after the last taken; acknowledge again, without acting,
// the last one repeated; reject anything else (replayed, out of order).
enum Verdict { TAKE, REPEAT, REJECT };

class Receiver {
 public:
  Verdict judge(uint8_t seq) const {
    if (seq == after(last_)) return TAKE;
    if (last_ != 0 && seq == last_) return REPEAT;
    return REJECT;
  }
  void taken(uint8_t seq) { last_ = seq; }
  void reset() { last_ = 0; }
  uint8_t last() const { return last_; }

 private:
  uint8_t last_ = 0;
};

// Stop-and-wait sending: one sequenced frame in flight, sent again every ack_timeout_ms
// until acknowledged, at most `retries` times more.
class Sender {
 public:
  enum Tick { IDLE, WAITING, RESEND, GAVE_UP };

  Sender(uint32_t ack_timeout_ms = 100, uint8_t retries = 5) : timeout_(ack_timeout_ms), retries_(retries) {}

  bool busy() const { return busy_; }
  // Start sending (false if a frame is still in flight); the frame is then frame()/length().
  bool start(uint8_t kind, const uint8_t* payload, size_t len, uint32_t now_ms);
  // An ACK came: true if it was the one awaited.
  bool acked(uint8_t seq);
  // What to do now: RESEND (write frame() again) or GAVE_UP (the link is lost).
  Tick tick(uint32_t now_ms);
  // A handshake: numbering starts again at 1; a frame in flight is renumbered and resent.
  void reset(uint32_t now_ms);
  const uint8_t* frame() const { return wire_; }
  size_t length() const { return length_; }

 private:
  uint32_t timeout_;
  uint8_t retries_;
  uint8_t next_ = 1;
  uint8_t seq_ = 0;
  bool busy_ = false;
  uint8_t tries_ = 0;
  uint32_t sent_at_ = 0;
  uint8_t kind_ = 0;
  uint8_t payload_[MAX_PAYLOAD];
  size_t len_ = 0;
  uint8_t wire_[MAX_WIRE];
  size_t length_ = 0;
};

}  // namespace bridge
