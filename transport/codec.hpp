// The msgpack codec of the client protocol (docs/PROTOCOL.md).
//
// Every frame from outside is unpacked with explicit limits (frame size, string and
// binary length, array and map sizes, nesting depth) before anything is allocated for
// it, then checked field by field: types, lengths, UTF-8. Every rejection is an Error
// with a stable code (common/error.hpp) and a message naming the field.
#pragma once

#include <string>
#include <string_view>

#include <msgpack.hpp>

#include "switchboard/common/error.hpp"
#include "switchboard/common/msgpack_reader.hpp"
#include "switchboard/transport/limits.hpp"
#include "switchboard/transport/messages.hpp"
#include "switchboard/transport/presence_messages.hpp"

namespace switchboard::transport {

/// A request as read from a frame. `id` is the request id when the frame was readable
/// far enough to find one (0 otherwise), so that even a rejection can be correlated.
template <class Body>
struct Decoded {
  std::uint64_t id = 0;
  Result<Body> body;
  /// The envelope's `as`: the user whose rights the request is made with (absent: the
  /// caller's own). Checked as a name.
  std::optional<std::string> as = std::nullopt;
};
using DecodedRequest = Decoded<RequestBody>;

/// Reads a request frame. Errors: bad_frame, too_large, bad_field, bad_utf8,
/// unsupported_version, unknown_op.
DecodedRequest decode_request(std::string_view frame, const Limits& limits);
std::string encode_request(const Request& request);

/// Reads a reply frame (client side). Same errors as decode_request.
Result<Reply> decode_reply(std::string_view frame, const Limits& limits);

/// A reply frame parsed once: its id first (to find whom it answers), then its body,
/// as a Reply or, for a history reply, in place. Holds views of the frame's bytes: the
/// frame must outlive it.
class ReplyFrame {
 public:
  /// Errors: those of decode_reply for the frame as a whole, its id and its envelope.
  static Result<ReplyFrame> read(std::string_view frame, const Limits& limits);
  std::uint64_t id() const noexcept { return id_; }
  /// The reply's body (what decode_reply gives).
  Result<Reply> reply() const;
  /// A history reply in place: the frame copied once, each message viewing the copy, its
  /// fields checked as decode_reply checks them. An error reply is this result's error
  /// (its code and message); a reply of another op is unknown_op.
  Result<HistoryPage> history_page() const;

 private:
  ReplyFrame(MsgpackReader reader, std::string_view frame, const Limits& limits, std::uint64_t id, std::string op);
  MsgpackReader reader_;
  std::string_view frame_;
  Limits limits_;
  std::uint64_t id_ = 0;
  std::string op_;
};
std::string encode_reply(const Reply& reply);

/// The payload frame published on a room's topic.
std::string encode_message(const RoomMessage& message);
std::string encode_message(std::string_view room, std::uint64_t seq, std::string_view user, std::uint64_t ts_ms,
                           std::string_view body, std::string_view client_msg_id);
Result<RoomMessage> decode_message(std::string_view frame, const Limits& limits);
/// The payload frame of a message whose message map (common/message_map.hpp) is made:
/// `v` and `op` are put in front of the map's fields; nothing is encoded again.
std::string message_event(std::string_view map);
/// A heads event (topic heads_topic()).
std::string encode_read_event(const ReadEvent& event);
Result<ReadEvent> decode_read_event(std::string_view frame, const Limits& limits);
std::string encode_heads(const HeadsEvent& heads);
Result<HeadsEvent> decode_heads(std::string_view frame, const Limits& limits);
/// A history reply whose `count` messages are message maps packed one after another
/// in `maps` (as a store in clear keeps them): the page is those bytes as they are.
/// `first_seq` not 0: the page says `truncated` (HistoryOk::first_seq).
std::string encode_history_reply(std::uint64_t id, std::size_t count, std::string_view maps, bool more,
                                 std::uint64_t first_seq = 0);

/// The presence protocol (transport/presence_messages.hpp), same rules.
using DecodedPresenceRequest = Decoded<PresenceRequestBody>;
DecodedPresenceRequest decode_presence_request(std::string_view frame, const Limits& limits);
std::string encode_presence_request(const PresenceRequest& request);
Result<PresenceReply> decode_presence_reply(std::string_view frame, const Limits& limits);
std::string encode_presence_reply(const PresenceReply& reply);
std::string encode_presence_event(const PresenceEvent& event);
Result<PresenceEvent> decode_presence_event(std::string_view frame, const Limits& limits);

// ---- building blocks, shared with the actors' internal messages ----------------

/// Reads one msgpack value that must fill `frame` exactly and be a map whose keys are
/// strings, none twice. The reader holds the frame's values as nodes (no msgpack zone;
/// its storage comes back to the thread's pool when it goes, so a warm read allocates
/// nothing). Its strings and binaries point into `frame`: it must not outlive `frame`.
/// Errors: too_large (frame or any limit), bad_frame (malformed, truncated, trailing
/// bytes, not a map, a key not a string, a key twice).
Result<MsgpackReader> unpack_map(std::string_view frame, const Limits& limits);
/// The same for a value of any type.
Result<MsgpackReader> unpack_value(std::string_view frame, const Limits& limits);

/// Typed, checked access to the fields of a msgpack map. Each getter returns false
/// and records the first error (naming the field) when the field is missing (if
/// required), of the wrong type, too long, or not valid UTF-8.
class FieldReader {
 public:
  /// `map` must be a map node, and outlive the reader.
  explicit FieldReader(const MsgpackNode& map);

  /// The value of `key`, or nullptr.
  const MsgpackNode* find(std::string_view key) const noexcept;
  bool text(std::string_view key, std::string& out, std::size_t max_bytes);
  /// The same checks as text(), the value left in place (a view of the bytes read).
  bool text(std::string_view key, std::string_view& out, std::size_t max_bytes);
  bool opt_text(std::string_view key, std::optional<std::string>& out, std::size_t max_bytes);
  /// A room or user name: text with no control characters, not empty.
  bool name(std::string_view key, std::string& out, std::size_t max_bytes);
  bool name(std::string_view key, std::string_view& out, std::size_t max_bytes);
  bool bytes(std::string_view key, std::string& out, std::size_t max_bytes);
  bool u64(std::string_view key, std::uint64_t& out);
  bool opt_u64(std::string_view key, std::optional<std::uint64_t>& out);
  bool boolean(std::string_view key, bool& out);
  bool text_array(std::string_view key, std::vector<std::string>& out, std::size_t max_bytes);
  /// The elements of the array stored at `key` (required).
  bool array(std::string_view key, MsgpackElements& items);

  bool ok() const noexcept { return !failed_; }
  const Error& error() const noexcept { return error_; }
  /// The map read.
  const MsgpackNode& map() const noexcept { return map_; }
  bool fail(errc code, std::string message);

 private:
  const MsgpackNode& map_;
  Error error_;
  bool failed_ = false;
};

/// The bytes of a frame being packed: msgpack writes straight into the string that is
/// sent, so a frame costs one allocation of its own size (msgpack::sbuffer starts at
/// 8 KiB and is copied out).
struct FrameBuffer {
  std::string bytes;
  FrameBuffer() = default;
  explicit FrameBuffer(std::size_t reserve) { bytes.reserve(reserve); }
  void write(const char* data, std::size_t size) { bytes.append(data, size); }
};
using Packer = msgpack::packer<FrameBuffer>;
/// Packs the header of a request or reply map with `fields` more entries: v, op, id.
void pack_header(Packer& pk, std::uint32_t fields, std::string_view op, std::uint64_t id);
/// Checks "v" of a frame's map and returns its "op". Errors: bad_field,
/// unsupported_version.
Result<std::string> read_envelope(FieldReader& fields);
/// The error reply's fields, after its header (both protocols).
void pack_error_fields(Packer& pk, const ErrorReply& error);
constexpr std::uint32_t kErrorFields = 2;
ErrorReply read_error_fields(FieldReader& fields, const Limits& limits);
/// The envelope's optional "as" (a user name; both protocols).
bool read_as(FieldReader& fields, std::optional<std::string>& as, const Limits& limits);
/// A "role" field: "owner", "member" or "reader".
bool read_role(FieldReader& fields, Role& role);
/// A presence availability field: "online", "away" or "busy".
bool read_availability(FieldReader& fields, std::string_view key, Availability& out);
/// A message's `mentions`, when `fields` has it: an array of at most `max` user names
/// (too_large past it), a name given twice kept once. Absent: none.
bool read_mentions(FieldReader& fields, std::vector<std::string>& out, std::size_t max, const Limits& limits);
bool read_mentions(FieldReader& fields, std::vector<std::string_view>& out, std::size_t max, const Limits& limits);
/// The same for an array already found (`what` names it in errors), e.g. a batch item's.
bool read_mention_names(FieldReader& fields, const MsgpackNode& array, std::string_view what,
                        std::vector<std::string>& out, std::size_t max, const Limits& limits);
/// A `rooms` request's paging of summaries: `limit` (opt), and `after_ts` with
/// `after_room` (both or neither). bad_field otherwise.
bool read_summary_page(FieldReader& fields, ListRooms& request, const Limits& limits);
/// A publish's `kind` and the fields that go with it (`target`, `key`, `on`: docs/PROTOCOL.md
/// 4.7.2; a message's `reply_to` and `thread`, 4.7.3), each checked; the caller reads
/// `body` and `mentions` after it when the kind has them (a message, an edit).
bool read_publish_kind(FieldReader& fields, Publish& publish);
/// A `history` request's fields (docs/PROTOCOL.md 4.8), each checked.
bool read_history_request(FieldReader& fields, History& history, const Limits& limits);
/// "a string", "an array", ...: for error messages.
std::string type_name(const MsgpackNode& o);
/// Packs a key/value pair of a map whose size was already packed.
template <class T>
void pack_field(Packer& pk, std::string_view key, const T& value) {
  pk.pack_str(static_cast<std::uint32_t>(key.size()));
  pk.pack_str_body(key.data(), static_cast<std::uint32_t>(key.size()));
  pk.pack(value);
}
/// Packs `bytes` as a msgpack binary (not a string: any bytes, no UTF-8 check on reading).
inline void pack_bin(Packer& pk, std::string_view bytes) {
  pk.pack_bin(static_cast<std::uint32_t>(bytes.size()));
  pk.pack_bin_body(bytes.data(), static_cast<std::uint32_t>(bytes.size()));
}
/// A key, then `bytes` as a binary.
inline void pack_bin_field(Packer& pk, std::string_view key, std::string_view bytes) {
  pk.pack_str(static_cast<std::uint32_t>(key.size()));
  pk.pack_str_body(key.data(), static_cast<std::uint32_t>(key.size()));
  pack_bin(pk, bytes);
}
inline std::string to_string(const msgpack::sbuffer& buffer) {
  return std::string(buffer.data(), buffer.size());
}
inline std::string to_string(const FrameBuffer& buffer) { return buffer.bytes; }

}  // namespace switchboard::transport
