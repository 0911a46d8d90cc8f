// JSON text <-> the protocol's typed messages, for the WebSocket bridge
// (docs/PROTOCOL.md section 10): a client's JSON text frame is read into the same
// msgpack map a binary frame carries, so one reader (transport::FieldReader, the
// node's own) checks both; replies, room messages and presence events are written
// as JSON straight from their types, with the node's field names and shapes
// (transport/codec.cpp encode_reply is the msgpack form of the same).
//
// Internal to the library (the bridge, its tests and its fuzz target); pure.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "switchboard/common/error.hpp"
#include "switchboard/common/msgpack_reader.hpp"
#include "switchboard/transport/messages.hpp"
#include "switchboard/transport/presence_messages.hpp"

namespace switchboard::actors::bridge {

// ---- reading ----------------------------------------------------------------------

/// Reads one JSON value from `text` (strict: nothing but whitespace after it) and
/// writes it to `out` (cleared first) as one msgpack value: objects as maps with
/// 32-bit headers, arrays likewise, strings as str, unsigned integers as positive
/// integers, negative ones as negative integers, other numbers as float64, null as nil.
/// An object key repeated at the top level keeps its last value, as a JSON object
/// reader does (nested objects keep every pair). Nothing is allocated but `out`'s
/// growth and the JSON lexer's own buffer.
/// Errors: too_large when anything sits inside more than `max_depth` nested objects
/// and arrays (as the bridge always measured it); bad_frame when `text` is not one JSON
/// value (malformed, truncated, trailing bytes, invalid UTF-8, a lone surrogate).
Result<void> json_to_msgpack(std::string_view text, std::size_t max_depth, std::string& out);

/// One JSON object read into `scratch` as json_to_msgpack writes it (the map's header is
/// 0xdf and a 32-bit count), and read back as a map whose strings view `scratch`: what a
/// client's text frame (the bridge) and a request's body (the HTTP API) are. Errors:
/// json_to_msgpack's, and bad_frame "not one JSON object" for any other JSON value.
Result<MsgpackReader> json_object(std::string_view text, std::size_t max_depth, std::string& scratch);

// ---- writing ----------------------------------------------------------------------

/// Writes JSON text with nlohmann::json::dump's spelling (no spaces; `"`, `\`, and
/// control characters escaped, \b \f \n \r \t by name, others as \u00XX; everything
/// else as it is), so a frame reads the same whichever writer made it. A string that
/// is not valid UTF-8 is written with U+FFFD for each bad sequence: the text is always
/// valid UTF-8, which browsers require of a text frame.
class JsonWriter {
 public:
  explicit JsonWriter(std::size_t reserve = 128) { out_.reserve(reserve); }

  JsonWriter& begin_object();
  JsonWriter& end_object();
  JsonWriter& begin_array();
  JsonWriter& end_array();
  JsonWriter& key(std::string_view key);
  JsonWriter& str(std::string_view value);
  JsonWriter& u64(std::uint64_t value);
  JsonWriter& boolean(bool value);
  /// The members of `object`, the text of a JSON object this writer wrote (so trusted to
  /// be well formed), as they are: they go on the object being written.
  JsonWriter& members(std::string_view object);
  /// key(k) then the value.
  JsonWriter& str(std::string_view k, std::string_view value) { return key(k).str(value); }
  JsonWriter& u64(std::string_view k, std::uint64_t value) { return key(k).u64(value); }
  JsonWriter& boolean(std::string_view k, bool value) { return key(k).boolean(value); }

  /// The text written so far; the writer is empty after.
  std::string take() { return std::move(out_); }

 private:
  void separate();
  std::string out_;
  bool comma_ = false;  ///< the next key or value follows a sibling
};

/// A room entry's fields beyond a plain message's (docs/PROTOCOL.md 4.7.2), as the
/// message map has them: kind, target (key, on), edited_ts, deleted, reactions (an object
/// of key to count), mine; each only when set.
void write_entry_fields(JsonWriter& w, const EntryFields& entry);

/// A room message as one JSON object of its own fields (room, seq, user, ts, body,
/// cmid, mentions, and its entry's fields): what the command line's `--json` prints,
/// a line per message; the bridge's `message` frame is the same with `v` and `op` first.
std::string message_object_json(const transport::RoomMessage& m);
/// What a reply's JSON starts with: `v`, `op` and `id` (a WebSocket connection), or
/// `op` alone (the HTTP API, docs/API.md: one request per answer, no id to match).
enum class Envelope : std::uint8_t { full, op_only };

/// The JSON text of a reply of the client protocol, for every ReplyBody alternative:
/// {"v": 1, "op": OP, "id": ID, ...} with the fields transport::encode_reply writes,
/// under the same names and conditions (a RoomsOk's `missing` only when not empty, a
/// MembersOk's `roles` only when there is one per member, ...).
std::string reply_json(const transport::Reply& reply, Envelope envelope = Envelope::full);
/// The same for a reply of the presence protocol (who, status, typing, ...).
std::string presence_reply_json(const transport::PresenceReply& reply, Envelope envelope = Envelope::full);
/// A room message as pushed to a connection: {"v": 1, "op": "message", "room", "seq",
/// "user", "ts", "body", "cmid"} (docs/PROTOCOL.md section 2.3).
std::string message_json(const transport::RoomMessage& message);
/// A presence event as pushed to a connection: {"v": 1, "op": "presence", "room",
/// "version", "kind", "user", "status", "text", "ttl_ms"} (section 7).
std::string presence_event_json(const transport::PresenceEvent& event);

/// One flat map in a connection's format, for the frames the bridge makes itself
/// (auth, subscribe, unsubscribe, errors): JSON text, or msgpack as the node packs its
/// own (smallest encodings). `fields` is the number of fields that will be written.
class MapWriter {
 public:
  MapWriter(bool binary, std::uint32_t fields);
  MapWriter& str(std::string_view key, std::string_view value);
  MapWriter& u64(std::string_view key, std::uint64_t value);
  MapWriter& boolean(std::string_view key, bool value);
  std::string take();

 private:
  bool binary_;
  JsonWriter json_;
  std::string msgpack_;
};

/// An error reply in a connection's format: {"v": 1, "op": "error", "id": ID, "code":
/// CODE, "message": TEXT}, and `retry_after_ms` when not zero (rate_limited).
std::string error_frame(bool binary, std::uint64_t id, std::string_view code, std::string_view message,
                        std::uint64_t retry_after_ms = 0);

}  // namespace switchboard::actors::bridge
