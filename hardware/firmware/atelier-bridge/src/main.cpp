// Atelier Access bridge firmware for an ESP32 (Arduino core): one machine's badge reader,
// current clamp, relay, lights, buzzer and button, driven by the gateway over USB serial
// with the bridge protocol (docs/firmware-protocol.md).
//
// Wiring (the parts as in hardware/wiring/gateway-pi.svg, on these ESP32 pins): RDM6300 TX
// through the same 1 kOhm / 2 kOhm divider (the ESP32 is a 3.3 V part) -> GPIO16 (UART2 RX),
// SCT-013-030 on a 1.65 V bias -> GPIO34 (ADC1_CH6), relay board input -> GPIO26, green LED
// -> GPIO25, red LED -> GPIO33, active buzzer (via a transistor) -> GPIO27, button to GND
// -> GPIO32. The gateway talks on the USB port (Serial, 115200 8N1).
//
// What it guarantees: the relay is off from reset until the gateway switches it on; a
// command is acknowledged only once carried out; a badge is sent once per tap (debounced);
// the link is declared lost after 3 s without a valid frame, and then the relay is kept
// as it is (as a Raspberry Pi's GPIO pin is when the gateway process dies) and the red LED
// blinks until the gateway says hello again.
#include <Arduino.h>

#include "bridge_protocol.h"

using namespace bridge;

// --- Pins and constants -----------------------------------------------------------------
static const int PIN_READER_RX = 16;
static const int PIN_CLAMP = 34;
static const int PIN_RELAY = 26;
static const bool RELAY_ACTIVE_HIGH = true;  // false for boards that close on a low input
static const int PIN_GREEN = 25;
static const int PIN_RED = 33;
static const int PIN_BUZZER = 27;
static const int PIN_BUTTON = 32;

static const char FIRMWARE[] = "atelier-bridge-esp32 1.0.0";
static const uint8_t CHANNELS = 1;
static const uint32_t ANNOUNCE_EVERY_MS = 1000;
static const uint32_t LINK_LOST_MS = 3000;
static const uint32_t CURRENT_EVERY_MS = 200;
static const float MAINS_HZ = 50.0f;
static const int WINDOW_CYCLES = 10;
static const float AMPS_PER_VOLT = 30.0f;  // SCT-013-030: 1 V RMS at 30 A
static const uint32_t BADGE_HOLD_MS = 1000;  // a card held on the reader counts once
static const uint32_t BUTTON_DEBOUNCE_MS = 50;

// --- Link state -------------------------------------------------------------------------
static Deframer deframer;
static Receiver receiver;
static Sender sender(100, 5);
static bool linked = false;
static uint32_t boot_id = 0;
static uint32_t last_heard = 0;
static uint32_t next_announce = 0;

// Messages waiting for the sender (a small ring; a newer CURRENT replaces a queued one).
struct Outgoing {
  uint8_t kind;
  uint8_t payload[12];
  uint8_t len;
};
static Outgoing queue[8];
static uint8_t queue_head = 0, queue_count = 0;

static void enqueue(uint8_t kind, const uint8_t* payload, uint8_t len) {
  if (kind == CURRENT) {
    for (uint8_t i = 0; i < queue_count; ++i) {
      Outgoing& waiting = queue[(queue_head + i) % 8];
      if (waiting.kind == CURRENT && waiting.payload[0] == payload[0]) {
        memcpy(waiting.payload, payload, len);
        return;
      }
    }
  }
  if (queue_count == 8) {  // full: drop the oldest (a stale reading, or a tap long gone)
    queue_head = (queue_head + 1) % 8;
    --queue_count;
  }
  Outgoing& slot = queue[(queue_head + queue_count) % 8];
  slot.kind = kind;
  slot.len = len;
  memcpy(slot.payload, payload, len);
  ++queue_count;
}

static void write_frame(uint8_t kind, uint8_t seq, const uint8_t* payload, size_t len) {
  uint8_t wire[MAX_WIRE];
  size_t n = pack(kind, seq, payload, len, wire);
  Serial.write(wire, n);
}

static void announce() {
  uint8_t payload[4] = {uint8_t(boot_id >> 24), uint8_t(boot_id >> 16), uint8_t(boot_id >> 8), uint8_t(boot_id)};
  write_frame(ANNOUNCE, 0, payload, 4);
}

// --- Relay, lights and sounds -----------------------------------------------------------
static bool relay_on = false;

static void set_relay(bool on) {
  relay_on = on;
  digitalWrite(PIN_RELAY, (on == RELAY_ACTIVE_HIGH) ? HIGH : LOW);
}

// Signals and refusal families as protocol.refusals numbers them; patterns in 50 ms ticks,
// the same as controller/hardware/patterns.py.
enum ShownSignal : uint8_t { SIG_LOCKED = 0, SIG_AUTHORISING, SIG_GRANTED, SIG_DENIED, SIG_RUNNING, SIG_ERROR };
struct Pattern {
  uint8_t beeps, on_ticks, off_ticks;
};
static const Pattern GRANTED_BEEP = {1, 2, 2};
static const Pattern DENIALS[6] = {
    {5, 1, 1},   // 0: no family given: as SYSTEM
    {2, 2, 2},   // 1 BADGE: two short
    {1, 14, 2},  // 2 TRAINING: one long
    {3, 2, 2},   // 3 BALANCE: three short
    {2, 8, 4},   // 4 MACHINE: two long
    {5, 1, 1},   // 5 SYSTEM: five quick
};
static const uint8_t PAUSE_TICKS = 20;

static uint8_t shown = SIG_LOCKED;
static Pattern pattern = {0, 0, 0};
static uint32_t pattern_started = 0;

static void indicate(uint8_t new_signal, uint8_t family) {
  shown = new_signal;
  pattern_started = millis();
  if (shown == SIG_GRANTED) pattern = GRANTED_BEEP;
  else if (shown == SIG_DENIED) pattern = DENIALS[family <= 5 ? family : 0];
  else pattern = {0, 0, 0};
}

static bool pattern_lit(uint32_t tick, bool repeat) {
  uint32_t period = uint32_t(pattern.on_ticks + pattern.off_ticks) * pattern.beeps;
  if (period == 0) return false;
  if (repeat) tick %= period + PAUSE_TICKS;
  if (tick >= period) return false;
  return tick % (pattern.on_ticks + pattern.off_ticks) < pattern.on_ticks;
}

static void show_lights(uint32_t now) {
  uint32_t tick = (now - pattern_started) / 50;
  bool blink = (now / 500) % 2;
  bool green = false, red = false;
  if (!linked) red = blink;  // no gateway: blinking red
  else if (shown == SIG_LOCKED) red = true;
  else if (shown == SIG_AUTHORISING) red = green = true;
  else if (shown == SIG_GRANTED || shown == SIG_RUNNING) green = true;
  else if (shown == SIG_DENIED) red = pattern_lit(tick, true);
  else red = green = blink;  // ERROR
  digitalWrite(PIN_GREEN, green);
  digitalWrite(PIN_RED, red);
  bool sound = (shown == SIG_GRANTED || shown == SIG_DENIED) && pattern_lit(tick, false);
  digitalWrite(PIN_BUZZER, sound);
}

// --- Badge reader (RDM6300 on UART2, 9600 8N1) ------------------------------------------
static uint8_t rdm_frame[14];
static uint8_t rdm_count = 0;
static uint8_t last_card[5];
static uint32_t last_card_at = 0;
static bool card_seen = false;

static int hex_value(uint8_t c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

static void reader_byte(uint8_t byte, uint32_t now) {
  if (byte == 0x02) {
    rdm_count = 0;
  } else if (rdm_count == 0) {
    return;  // noise outside a frame
  }
  if (rdm_count < sizeof rdm_frame) rdm_frame[rdm_count++] = byte;
  if (rdm_count < sizeof rdm_frame) return;
  rdm_count = 0;
  if (rdm_frame[13] != 0x03) return;
  uint8_t card[5], check = 0;
  for (int i = 0; i < 6; ++i) {
    int high = hex_value(rdm_frame[1 + 2 * i]), low = hex_value(rdm_frame[2 + 2 * i]);
    if (high < 0 || low < 0) return;
    uint8_t value = uint8_t(high << 4 | low);
    if (i < 5) {
      card[i] = value;
      check ^= value;
    } else if (value != check) {
      return;  // bad checksum: the next repeat of the frame will do
    }
  }
  bool same = card_seen && memcmp(card, last_card, 5) == 0 && now - last_card_at <= BADGE_HOLD_MS;
  memcpy(last_card, card, 5);
  last_card_at = now;
  card_seen = true;
  if (same) return;
  uint8_t payload[7] = {0, 5, card[0], card[1], card[2], card[3], card[4]};
  enqueue(BADGE, payload, sizeof payload);
}

// --- Button --------------------------------------------------------------------------------
static bool button_was_down = false;
static uint32_t button_changed_at = 0;

static void read_button(uint32_t now) {
  bool down = digitalRead(PIN_BUTTON) == LOW;
  if (down == button_was_down || now - button_changed_at < BUTTON_DEBOUNCE_MS) return;
  button_was_down = down;
  button_changed_at = now;
  if (down) {
    uint8_t payload[1] = {0};
    enqueue(BUTTON, payload, 1);
  }
}

// --- Current: RMS over whole mains cycles, one sample per loop pass -------------------------
static double sum = 0, sum_squares = 0;
static uint32_t samples = 0, window_started_us = 0;
static uint32_t milliamps = 0, next_current = 0;

static void sample_current(uint32_t now) {
  uint32_t now_us = micros();
  if (samples == 0) window_started_us = now_us;
  double volts = analogReadMilliVolts(PIN_CLAMP) / 1000.0;
  sum += volts;
  sum_squares += volts * volts;
  ++samples;
  if (now_us - window_started_us >= uint32_t(WINDOW_CYCLES * 1e6 / MAINS_HZ)) {
    double mean = sum / samples;  // the bias, measured: a whole number of cycles averages it out
    double variance = sum_squares / samples - mean * mean;
    milliamps = uint32_t(sqrt(variance > 0 ? variance : 0) * AMPS_PER_VOLT * 1000.0 + 0.5);
    sum = sum_squares = 0;
    samples = 0;
  }
  if (linked && now >= next_current) {
    next_current = now + CURRENT_EVERY_MS;
    uint8_t payload[5] = {0, uint8_t(milliamps >> 24), uint8_t(milliamps >> 16), uint8_t(milliamps >> 8),
                          uint8_t(milliamps)};
    enqueue(CURRENT, payload, 5);
  }
}

// --- Frames from the gateway --------------------------------------------------------------
static void carry_out(const Packet& packet) {
  if (packet.kind == SWITCH && packet.len == 2 && packet.payload[0] < CHANNELS && packet.payload[1] <= 1) {
    set_relay(packet.payload[1] == 1);
  } else if (packet.kind == INDICATE && packet.len == 3 && packet.payload[0] < CHANNELS) {
    indicate(packet.payload[1], packet.payload[2]);
  }
  // PING, or a message for a channel this board does not have: acknowledged, nothing to do.
}

static void on_packet(const Packet& packet, uint32_t now) {
  last_heard = now;
  if (packet.kind == ACK) {
    sender.acked(packet.seq);
    return;
  }
  if ((packet.seq == 0) != is_handshake(packet.kind)) return;
  if (packet.seq == 0) {
    if (packet.kind != HELLO) return;
    uint8_t reply[7 + sizeof FIRMWARE] = {PROTOCOL_MAJOR, PROTOCOL_MINOR, uint8_t(boot_id >> 24),
                                          uint8_t(boot_id >> 16), uint8_t(boot_id >> 8), uint8_t(boot_id),
                                          CHANNELS};
    memcpy(reply + 7, FIRMWARE, sizeof FIRMWARE - 1);
    write_frame(HELLO_REPLY, 0, reply, 7 + sizeof FIRMWARE - 1);
    receiver.reset();
    sender.reset(now);
    linked = true;
    return;
  }
  switch (receiver.judge(packet.seq)) {
    case TAKE:
      carry_out(packet);  // first done, then acknowledged
      receiver.taken(packet.seq);
      write_frame(ACK, packet.seq, nullptr, 0);
      break;
    case REPEAT:
      write_frame(ACK, packet.seq, nullptr, 0);  // our ACK was lost: again, without acting
      break;
    case REJECT:
      break;  // replayed or out of order: no ACK
  }
}

static void lose_link(uint32_t now) {
  linked = false;
  next_announce = now;
}

// --- Arduino ----------------------------------------------------------------------------------
void setup() {
  pinMode(PIN_RELAY, OUTPUT);
  set_relay(false);  // off before anything else
  pinMode(PIN_GREEN, OUTPUT);
  pinMode(PIN_RED, OUTPUT);
  pinMode(PIN_BUZZER, OUTPUT);
  pinMode(PIN_BUTTON, INPUT_PULLUP);
  analogSetPinAttenuation(PIN_CLAMP, ADC_11db);
  Serial.begin(115200);
  Serial2.begin(9600, SERIAL_8N1, PIN_READER_RX, -1);
  boot_id = esp_random();
  indicate(SIG_LOCKED, 0);
}

void loop() {
  uint32_t now = millis();
  while (Serial.available()) {
    Packet packet;
    FrameError error;
    if (deframer.feed(uint8_t(Serial.read()), packet, error) && error == FRAME_OK) on_packet(packet, now);
  }
  while (Serial2.available()) reader_byte(uint8_t(Serial2.read()), now);
  read_button(now);
  sample_current(now);

  if (linked && now - last_heard > LINK_LOST_MS) lose_link(now);
  if (!linked && now >= next_announce) {
    next_announce = now + ANNOUNCE_EVERY_MS;
    announce();
  }
  if (linked) {
    switch (sender.tick(now)) {
      case Sender::RESEND: Serial.write(sender.frame(), sender.length()); break;
      case Sender::GAVE_UP: lose_link(now); break;
      default: break;
    }
    if (!sender.busy() && queue_count) {
      Outgoing& next = queue[queue_head];
      if (sender.start(next.kind, next.payload, next.len, now)) {
        Serial.write(sender.frame(), sender.length());
        queue_head = (queue_head + 1) % 8;
        --queue_count;
      }
    }
  }
  show_lights(now);
}
