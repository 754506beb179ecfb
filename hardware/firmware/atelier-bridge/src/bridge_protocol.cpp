// The Atelier Access bridge protocol: see bridge_protocol.h and docs/firmware-protocol.md.
#include "bridge_protocol.h"

#include <string.h>

namespace bridge {

uint16_t crc16(const uint8_t* data, size_t len, uint16_t crc) {
  for (size_t i = 0; i < len; ++i) {
    crc ^= static_cast<uint16_t>(data[i]) << 8;
    for (int bit = 0; bit < 8; ++bit) {
      crc = (crc & 0x8000) ? static_cast<uint16_t>((crc << 1) ^ 0x1021) : static_cast<uint16_t>(crc << 1);
    }
  }
  return crc;
}

size_t cobs_encode(const uint8_t* in, size_t len, uint8_t* out) {
  size_t code_at = 0, n = 1;
  uint8_t code = 1;
  bool full = false;  // the last block was a 0xFF one and nothing came after it
  for (size_t i = 0; i < len; ++i) {
    full = false;
    if (in[i] == 0) {
      out[code_at] = code;
      code_at = n++;
      code = 1;
    } else {
      out[n++] = in[i];
      if (++code == 0xFF) {
        out[code_at] = code;
        code_at = n++;
        code = 1;
        full = true;
      }
    }
  }
  if (full) return n - 1;  // no empty block after a full one at the very end
  out[code_at] = code;
  return n;
}

int cobs_decode(const uint8_t* in, size_t len, uint8_t* out, size_t capacity) {
  size_t i = 0, n = 0;
  while (i < len) {
    uint8_t code = in[i];
    if (code == 0 || i + code > len) return -1;
    for (size_t j = 1; j < code; ++j) {
      if (in[i + j] == 0 || n >= capacity) return -1;
      out[n++] = in[i + j];
    }
    i += code;
    if (code != 0xFF && i < len) {
      if (n >= capacity) return -1;
      out[n++] = 0;
    }
  }
  return static_cast<int>(n);
}

size_t pack(uint8_t kind, uint8_t seq, const uint8_t* payload, size_t len, uint8_t* wire) {
  if (len > MAX_PAYLOAD) return 0;
  uint8_t packet[MAX_PACKET];
  packet[0] = kind;
  packet[1] = seq;
  if (len) memcpy(packet + 2, payload, len);
  uint16_t crc = crc16(packet, 2 + len);
  packet[2 + len] = static_cast<uint8_t>(crc >> 8);
  packet[3 + len] = static_cast<uint8_t>(crc & 0xFF);
  size_t n = cobs_encode(packet, 4 + len, wire);
  wire[n] = 0;
  return n + 1;
}

const char* frame_error_name(FrameError error) {
  switch (error) {
    case FRAME_OK: return "ok";
    case FRAME_COBS: return "cobs";
    case FRAME_SHORT: return "short";
    case FRAME_LONG: return "long";
    case FRAME_CRC: return "crc";
  }
  return "?";
}

FrameError unpack(const uint8_t* encoded, size_t len, Packet& packet) {
  if (len > MAX_ENCODED) return FRAME_LONG;
  uint8_t raw[MAX_ENCODED];
  int n = cobs_decode(encoded, len, raw, sizeof raw);
  if (n < 0) return FRAME_COBS;
  if (n < 4) return FRAME_SHORT;
  if (static_cast<size_t>(n) > MAX_PACKET) return FRAME_LONG;
  uint16_t sent = static_cast<uint16_t>(raw[n - 2] << 8 | raw[n - 1]);
  if (sent != crc16(raw, n - 2)) return FRAME_CRC;
  packet.kind = raw[0];
  packet.seq = raw[1];
  packet.len = n - 4;
  if (packet.len) memcpy(packet.payload, raw + 2, packet.len);
  return FRAME_OK;
}

bool Deframer::feed(uint8_t byte, Packet& packet, FrameError& error) {
  if (byte != 0) {
    if (discarding_) return false;
    if (count_ == sizeof buffer_) {  // too long for any frame: skip to the next delimiter
      discarding_ = true;
      count_ = 0;
      error = FRAME_LONG;
      return true;
    }
    buffer_[count_++] = byte;
    return false;
  }
  if (discarding_) {
    discarding_ = false;
    return false;
  }
  if (count_ == 0) return false;  // idle delimiters between frames
  error = unpack(buffer_, count_, packet);
  count_ = 0;
  return true;
}

bool Sender::start(uint8_t kind, const uint8_t* payload, size_t len, uint32_t now_ms) {
  if (busy_ || len > MAX_PAYLOAD) return false;
  kind_ = kind;
  len_ = len;
  if (len) memcpy(payload_, payload, len);
  seq_ = next_;
  next_ = after(next_);
  length_ = pack(kind_, seq_, payload_, len_, wire_);
  busy_ = true;
  tries_ = 1;
  sent_at_ = now_ms;
  return true;
}

bool Sender::acked(uint8_t seq) {
  if (!busy_ || seq != seq_) return false;
  busy_ = false;
  return true;
}

Sender::Tick Sender::tick(uint32_t now_ms) {
  if (!busy_) return IDLE;
  if (now_ms - sent_at_ < timeout_) return WAITING;
  if (tries_ > retries_) {
    busy_ = false;
    return GAVE_UP;
  }
  ++tries_;
  sent_at_ = now_ms;
  return RESEND;
}

void Sender::reset(uint32_t now_ms) {
  next_ = 1;
  if (busy_) {  // renumbered, and written again at the next tick
    seq_ = next_;
    next_ = after(next_);
    length_ = pack(kind_, seq_, payload_, len_, wire_);
    tries_ = 0;
    sent_at_ = now_ms - timeout_;
  }
}

}  // namespace bridge
