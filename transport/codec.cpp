#include "switchboard/transport/codec.hpp"

#include <algorithm>
#include <array>
#include <cstring>

#include "switchboard/common/event_rooms.hpp"
#include "switchboard/common/overloaded.hpp"
#include "switchboard/common/message_map.hpp"
#include "switchboard/common/utf8.hpp"
#include "switchboard/transport/ops.hpp"

namespace switchboard::transport {

std::string type_name(const MsgpackNode& o) { return msgpack_type_name(o.type); }

namespace {

/// A message's map (common/message_map.hpp), packed where `pk` writes.
void pack_message(FrameBuffer& buffer, const RoomMessage& m) {
  const std::string map = encode_message_map(m.room, m.seq, m.user, m.ts_ms, m.body, m.client_msg_id, m.mentions,
                                             m.entry.plain() ? nullptr : &m.entry);
  buffer.write(map.data(), map.size());
}

/// The entry fields of a message map (all optional: a plain message has none; keys it
/// does not know are left alone), with their types checked as a node's: a lifecycle
/// entry has its kind and target (a reaction its key and on). `base`: the fields of the
/// map that are not entry fields, known already: a map of no more has none (one look).
bool read_entry_fields(FieldReader& f, EntryFields& e, std::uint32_t base) {
  const MsgpackNode& map = f.map();
  if (map.size <= base) return true;  // a plain message: the common case
  EntryReader entry(e);
  const MsgpackNode* kv = &map + 1;
  for (std::uint32_t i = 0; i < map.size; ++i, kv = kv[1].next()) {
    if (!kv[0].is(MsgpackType::str) || !EntryReader::is_entry_key(kv[0].view())) continue;
    if (!entry.read(kv[0].view(), kv[1]))
      return f.fail(errc::bad_field, "field '" + std::string(kv[0].view()) + "' is not as section 2.3 says");
  }
  if (!entry.complete()) return f.fail(errc::bad_field, "a lifecycle entry without its 'kind', 'target' (or 'key', 'on')");
  return true;
}

// A message as a node sends it (a history page, a published message). Its room and user
// are read as text, not checked as names: a room's events log (common/event_rooms.hpp),
// which only the node's own webhook sender reads, has a name no client may use and
// entries with no user.
bool read_message_fields(FieldReader& f, MessageView& m, const Limits& limits) {
  return f.text("room", m.room, limits.max_room + kEventsRoomPrefix.size()) && f.u64("seq", m.seq) &&
         f.text("user", m.user, limits.max_user) && f.u64("ts", m.ts_ms) &&
         f.text("body", m.body, limits.max_body) &&
         f.text("cmid", m.client_msg_id, limits.max_client_msg_id) &&
         read_mentions(f, m.mentions, limits.max_array, limits) &&
         read_entry_fields(f, m.entry, 6 + !m.mentions.empty() + (f.find("v") != nullptr) + (f.find("op") != nullptr));
}
bool read_message_fields(FieldReader& f, RoomMessage& m, const Limits& limits) {
  MessageView view;
  if (!read_message_fields(f, view, limits)) return false;
  m.room.assign(view.room);
  m.seq = view.seq;
  m.user.assign(view.user);
  m.ts_ms = view.ts_ms;
  m.body.assign(view.body);
  m.client_msg_id.assign(view.client_msg_id);
  m.mentions.assign(view.mentions.begin(), view.mentions.end());
  m.entry = std::move(view.entry);
  return true;
}

/// The maps of the array at `key`, each read into the next element of `out` by
/// `read(FieldReader&, T&)`; `not_maps`: the error when an element is not a map.
template <class T, class Read>
bool read_maps(FieldReader& f, std::string_view key, std::string_view not_maps, std::vector<T>& out, Read&& read) {
  MsgpackElements items;
  if (!f.array(key, items)) return false;
  out.resize(items.size());
  auto m = out.begin();
  for (const MsgpackNode& item : items) {
    if (!item.is(MsgpackType::map)) return f.fail(errc::bad_field, std::string(not_maps));
    FieldReader mf(item);
    if (!read(mf, *m++)) return f.fail(mf.error().code, mf.error().message);
  }
  return true;
}

/// A history reply's "messages", each read into `out` (RoomMessage or MessageView) as
/// read_message_fields reads it.
template <class Message>
bool read_history_messages(FieldReader& f, std::vector<Message>& out, const Limits& limits) {
  return read_maps(f, "messages", "history messages must be maps", out,
                   [&](FieldReader& mf, Message& m) { return read_message_fields(mf, m, limits); });
}

}  // namespace

void pack_header(Packer& pk, std::uint32_t fields, std::string_view op, std::uint64_t id) {
  pk.pack_map(fields + 3);
  pack_field(pk, "v", kProtocolVersion);
  pack_field(pk, "op", op);
  pack_field(pk, "id", id);
}

Result<std::string> read_envelope(FieldReader& f) {
  const MsgpackNode* v = f.find("v");
  if (v == nullptr) return make_error(errc::bad_field, "missing field 'v' (protocol version)");
  if (!v->is(MsgpackType::positive_integer))
    return make_error(errc::bad_field, "field 'v' must be an unsigned integer, got " + type_name(*v));
  if (v->via.u64 != kProtocolVersion)
    return make_error(errc::unsupported_version,
                      "protocol version " + std::to_string(v->via.u64) +
                          " is not supported; this node speaks version " +
                          std::to_string(kProtocolVersion));
  std::string op;
  if (!f.text("op", op, 32)) return f.error();
  return op;
}

void pack_error_fields(Packer& pk, const ErrorReply& error) {
  pack_field(pk, "code", errc_name(error.code));
  pack_field(pk, "message", error.message);
}

ErrorReply read_error_fields(FieldReader& f, const Limits& limits) {
  ErrorReply r;
  std::string code;
  f.text("code", code, 64) && f.text("message", r.message, limits.max_string);
  r.code = errc_from_name(code);
  return r;
}

// The envelope's optional `as` (a user name).
bool read_as(FieldReader& f, std::optional<std::string>& as, const Limits& limits) {
  if (!f.opt_text("as", as, limits.max_user)) return false;
  if (as && !valid_name(*as))
    return f.fail(errc::bad_field, "field 'as' must be a non-empty name without control characters");
  return true;
}

bool read_role(FieldReader& f, Role& role) {
  std::string name;
  if (!f.text("role", name, 16)) return false;
  auto r = role_from_name(name);
  if (!r) return f.fail(errc::bad_field, "field 'role' must be 'owner', 'member' or 'reader'");
  role = *r;
  return true;
}

// ---- unpacking -------------------------------------------------------------------

Result<MsgpackReader> unpack_map(std::string_view frame, const Limits& limits) {
  auto reader = unpack_value(frame, limits);
  if (!reader) return reader;
  const MsgpackNode& map = reader->root();
  if (!map.is(MsgpackType::map))
    return make_error(errc::bad_frame, "frame must be a msgpack map, got " + type_name(map));
  // Keys are strings (checked as they are met), so each key takes one node.
  const MsgpackNode* key = &map + 1;
  for (std::uint32_t i = 0; i < map.size; ++i, key = key->next()->next()) {
    if (!key->is(MsgpackType::str))
      return make_error(errc::bad_frame, "map keys must be strings, got " + type_name(*key));
    for (const MsgpackNode* earlier = &map + 1; earlier != key; earlier = earlier->next()->next())
      if (earlier->view() == key->view())
        return make_error(errc::bad_frame, "duplicate key '" + std::string(key->view()) + "'");
  }
  return reader;
}

Result<MsgpackReader> unpack_value(std::string_view frame, const Limits& limits) {
  if (frame.size() > limits.max_frame)
    return make_error(errc::too_large, "frame of " + std::to_string(frame.size()) +
                                           " bytes exceeds the limit of " +
                                           std::to_string(limits.max_frame));
  if (frame.empty()) return make_error(errc::bad_frame, "empty frame");
  // Every element takes at least one byte, so a header announcing more elements than
  // the frame has bytes cannot be honest. Capping headers at max(frame length, 64)
  // refuses such a header before its elements are read, whatever the configured
  // limits; short truncated frames still fall under the cap and are reported as
  // truncated.
  const std::size_t honest = std::max<std::size_t>(frame.size(), 64);
  const std::size_t max_array = std::min(limits.max_array, honest);
  const std::size_t max_map = std::min(limits.max_map, honest);
  const msgpack::unpack_limit limit(max_array, max_map, limits.max_string, limits.max_string,
                                    limits.max_string, limits.max_depth);
  auto too_many = [&](const char* what, std::size_t cap, std::size_t configured) {
    if (cap < configured)
      return make_error(errc::too_large, std::string("an ") + what + " header announces more elements than the " +
                                             std::to_string(frame.size()) + "-byte frame can hold");
    return make_error(errc::too_large, std::string(what) + " larger than " + std::to_string(configured));
  };
  MsgpackReader reader;
  if (!reader.read(frame, limit)) {
    switch (reader.failure()) {
      case MsgpackFailure::too_deep:
        return make_error(errc::too_large, "nesting deeper than " + std::to_string(limits.max_depth));
      case MsgpackFailure::array_too_large: return too_many("array", max_array, limits.max_array);
      case MsgpackFailure::map_too_large: return too_many("map", max_map, limits.max_map);
      case MsgpackFailure::bytes_too_long:
        return make_error(errc::too_large, "string or binary longer than " + std::to_string(limits.max_string));
      case MsgpackFailure::truncated: return make_error(errc::bad_frame, "truncated msgpack");
      case MsgpackFailure::malformed:
      case MsgpackFailure::none: break;
    }
    return make_error(errc::bad_frame, "malformed msgpack: parse error");
  }
  if (reader.consumed() != frame.size())
    return make_error(errc::bad_frame, std::to_string(frame.size() - reader.consumed()) +
                                           " trailing bytes after the msgpack value");
  return reader;
}

// ---- FieldReader -----------------------------------------------------------------

FieldReader::FieldReader(const MsgpackNode& map) : map_(map) {}

const MsgpackNode* FieldReader::find(std::string_view key) const noexcept {
  const MsgpackNode* k = &map_ + 1;
  for (std::uint32_t i = 0; i < map_.size; ++i) {
    const MsgpackNode* value = k->next();
    // Size and first byte before the call to memcmp: most keys differ there.
    if (k->size == key.size() && k->is(MsgpackType::str) && (key.empty() || k->via.bytes[0] == key[0]) &&
        std::memcmp(k->via.bytes, key.data(), key.size()) == 0)
      return value;
    k = value->next();
  }
  return nullptr;
}

bool FieldReader::fail(errc code, std::string message) {
  if (!failed_) error_ = Error{code, std::move(message)};
  failed_ = true;
  return false;
}

bool FieldReader::text(std::string_view key, std::string_view& out, std::size_t max_bytes) {
  if (failed_) return false;
  const MsgpackNode* o = find(key);
  if (o == nullptr) return fail(errc::bad_field, "missing field '" + std::string(key) + "'");
  if (!o->is(MsgpackType::str))
    return fail(errc::bad_field, "field '" + std::string(key) + "' must be a string, got " + type_name(*o));
  std::string_view s = o->view();
  if (s.size() > max_bytes)
    return fail(errc::too_large, "field '" + std::string(key) + "' is " + std::to_string(s.size()) +
                                     " bytes; the limit is " + std::to_string(max_bytes));
  if (!valid_utf8(s)) return fail(errc::bad_utf8, "field '" + std::string(key) + "' is not valid UTF-8");
  out = s;
  return true;
}

bool FieldReader::text(std::string_view key, std::string& out, std::size_t max_bytes) {
  std::string_view s;
  if (!text(key, s, max_bytes)) return false;
  out.assign(s);
  return true;
}

bool FieldReader::opt_text(std::string_view key, std::optional<std::string>& out, std::size_t max_bytes) {
  const MsgpackNode* o = find(key);
  if (o == nullptr || o->is(MsgpackType::nil)) { out.reset(); return ok(); }
  std::string s;
  if (!text(key, s, max_bytes)) return false;
  out = std::move(s);
  return true;
}

bool FieldReader::name(std::string_view key, std::string_view& out, std::size_t max_bytes) {
  if (!text(key, out, max_bytes)) return false;
  if (!valid_name(out))
    return fail(errc::bad_field, "field '" + std::string(key) +
                                     "' must be a non-empty name without control characters");
  return true;
}

bool FieldReader::name(std::string_view key, std::string& out, std::size_t max_bytes) {
  std::string_view s;
  if (!name(key, s, max_bytes)) return false;
  out.assign(s);
  return true;
}

bool FieldReader::bytes(std::string_view key, std::string& out, std::size_t max_bytes) {
  if (failed_) return false;
  const MsgpackNode* o = find(key);
  if (o == nullptr) return fail(errc::bad_field, "missing field '" + std::string(key) + "'");
  if (!o->is(MsgpackType::bin) && !o->is(MsgpackType::str))
    return fail(errc::bad_field, "field '" + std::string(key) + "' must be binary, got " + type_name(*o));
  if (o->size > max_bytes)
    return fail(errc::too_large, "field '" + std::string(key) + "' is too large");
  out.assign(o->view());
  return true;
}

bool FieldReader::u64(std::string_view key, std::uint64_t& out) {
  if (failed_) return false;
  const MsgpackNode* o = find(key);
  if (o == nullptr) return fail(errc::bad_field, "missing field '" + std::string(key) + "'");
  if (!o->is(MsgpackType::positive_integer))
    return fail(errc::bad_field, "field '" + std::string(key) + "' must be an unsigned integer, got " +
                                     type_name(*o));
  out = o->via.u64;
  return true;
}

bool FieldReader::opt_u64(std::string_view key, std::optional<std::uint64_t>& out) {
  const MsgpackNode* o = find(key);
  if (o == nullptr || o->is(MsgpackType::nil)) { out.reset(); return ok(); }
  std::uint64_t v = 0;
  if (!u64(key, v)) return false;
  out = v;
  return true;
}

bool FieldReader::boolean(std::string_view key, bool& out) {
  if (failed_) return false;
  const MsgpackNode* o = find(key);
  if (o == nullptr) return fail(errc::bad_field, "missing field '" + std::string(key) + "'");
  if (!o->is(MsgpackType::boolean))
    return fail(errc::bad_field, "field '" + std::string(key) + "' must be a boolean, got " + type_name(*o));
  out = o->via.boolean;
  return true;
}

bool FieldReader::array(std::string_view key, MsgpackElements& items) {
  if (failed_) return false;
  const MsgpackNode* o = find(key);
  if (o == nullptr) return fail(errc::bad_field, "missing field '" + std::string(key) + "'");
  if (!o->is(MsgpackType::array))
    return fail(errc::bad_field, "field '" + std::string(key) + "' must be an array, got " + type_name(*o));
  items = o->elements();
  return true;
}

bool FieldReader::text_array(std::string_view key, std::vector<std::string>& out, std::size_t max_bytes) {
  MsgpackElements items;
  if (!array(key, items)) return false;
  out.clear();
  out.reserve(items.size());
  for (const MsgpackNode& o : items) {
    if (!o.is(MsgpackType::str) || o.size > max_bytes || !valid_utf8(o.view()))
      return fail(errc::bad_field, "field '" + std::string(key) + "' must hold UTF-8 strings of at most " +
                                       std::to_string(max_bytes) + " bytes");
    out.emplace_back(o.view());
  }
  return true;
}

namespace {

template <class Name>
bool read_names(FieldReader& f, const MsgpackNode& array, std::string_view what, std::vector<Name>& out,
                std::size_t max, const Limits& limits) {
  out.clear();
  if (!array.is(MsgpackType::array))
    return f.fail(errc::bad_field, std::string(what) + " must be an array of user names, got " + type_name(array));
  if (array.size > max)
    return f.fail(errc::too_large, std::string(what) + " names " + std::to_string(array.size) +
                                       " users; a message mentions at most " + std::to_string(max) +
                                       " ([limits] max_mentions)");
  out.reserve(array.size);
  for (const MsgpackNode& o : array.elements()) {
    if (!o.is(MsgpackType::str) || o.size == 0 || o.size > limits.max_user || !valid_name(o.view()))
      return f.fail(errc::bad_field, std::string(what) + " must hold user names: non-empty, at most " +
                                         std::to_string(limits.max_user) + " bytes, no control characters");
    if (std::find(out.begin(), out.end(), o.view()) == out.end()) out.emplace_back(o.view());
  }
  return true;
}

template <class Name>
bool read_mentions_field(FieldReader& f, std::vector<Name>& out, std::size_t max, const Limits& limits) {
  const MsgpackNode* o = f.find("mentions");
  if (o == nullptr) {
    out.clear();
    return true;
  }
  return read_names(f, *o, "field 'mentions'", out, max, limits);
}

}  // namespace

bool read_summary_page(FieldReader& f, ListRooms& r, const Limits& limits) {
  std::optional<std::uint64_t> limit, ts;
  std::optional<std::string> room;
  if (!f.opt_u64("limit", limit) || !f.opt_u64("after_ts", ts) || !f.opt_text("after_room", room, limits.max_room))
    return false;
  if (limit && *limit > 0xFFFFFFFFull) return f.fail(errc::bad_field, "field 'limit' is out of range");
  if (ts.has_value() != room.has_value())
    return f.fail(errc::bad_field, "give 'after_ts' and 'after_room' together: the last summary of the page before");
  r.limit = limit ? static_cast<std::uint32_t>(*limit) : 0;
  if (ts) r.after = SummaryCursor{*ts, std::move(*room)};
  return true;
}

bool read_history_request(FieldReader& f, History& h, const Limits& limits) {
  std::optional<std::uint64_t> limit, thread;
  f.name("room", h.room, limits.max_room) && f.opt_u64("limit", limit) && f.opt_u64("before", h.before) &&
      f.opt_u64("after", h.after) && f.opt_u64("thread", thread);
  if (f.ok() && h.before && h.after) f.fail(errc::bad_field, "give 'before' or 'after', not both");
  if (f.ok() && limit && *limit > 0xFFFFFFFFull) f.fail(errc::bad_field, "field 'limit' is out of range");
  if (f.ok() && thread && *thread == 0) f.fail(errc::bad_field, "field 'thread' must be the seq of a root (1 or more)");
  h.limit = limit ? static_cast<std::uint32_t>(*limit) : 0;
  h.thread = thread.value_or(0);
  return f.ok();
}

bool read_publish_kind(FieldReader& f, Publish& p) {
  std::optional<std::string> kind;
  if (!f.opt_text("kind", kind, 16)) return false;
  if (kind) {
    auto k = entry_kind_from_name(*kind);
    if (!k) return f.fail(errc::bad_field, "field 'kind' must be 'message', 'edit', 'delete' or 'react'");
    p.kind = *k;
  }
  if (p.kind == EntryKind::message) {
    for (const char* field : {"target", "key", "on"})
      if (f.find(field)) return f.fail(errc::bad_field, std::string("field '") + field + "' is for an edit, delete or react");
    for (auto [field, seq] : {std::pair{"reply_to", &p.reply_to}, std::pair{"thread", &p.thread}}) {
      std::optional<std::uint64_t> at;
      if (!f.opt_u64(field, at)) return false;
      if (at && *at == 0) return f.fail(errc::bad_field, std::string("field '") + field + "' must be the seq of a message (1 or more)");
      *seq = at.value_or(0);
    }
    return true;
  }
  for (const char* field : {"reply_to", "thread"})
    if (f.find(field))
      return f.fail(errc::bad_field, std::string("a ") + std::string(entry_kind_name(p.kind)) + " has no field '" +
                                         field + "': it is a message's (section 4.7.3)");
  if (!f.u64("target", p.target)) return false;
  if (p.target == 0) return f.fail(errc::bad_field, "field 'target' must be the seq of a message (1 or more)");
  const bool react = p.kind == EntryKind::react;
  if (!react)
    for (const char* field : {"key", "on"})
      if (f.find(field)) return f.fail(errc::bad_field, std::string("field '") + field + "' is for a react");
  if (p.kind != EntryKind::edit)
    for (const char* field : {"body", "mentions"})
      if (f.find(field))
        return f.fail(errc::bad_field, std::string("a ") + std::string(entry_kind_name(p.kind)) + " has no field '" +
                                           field + "'");
  if (p.kind == EntryKind::edit && f.find("mentions")) return f.fail(errc::bad_field, "an edit has no field 'mentions'");
  if (!react) return true;
  if (!f.text("key", p.key, 1024)) return false;
  if (p.key.empty() || p.key.size() > kMaxReactionKey || !valid_name(p.key))
    return f.fail(errc::bad_field, "field 'key' must be 1 to " + std::to_string(kMaxReactionKey) +
                                       " bytes of UTF-8 without control characters");
  if (f.find("on") && !f.boolean("on", p.on)) return false;
  return true;
}

bool read_mentions(FieldReader& f, std::vector<std::string>& out, std::size_t max, const Limits& limits) {
  return read_mentions_field(f, out, max, limits);
}
bool read_mentions(FieldReader& f, std::vector<std::string_view>& out, std::size_t max, const Limits& limits) {
  return read_mentions_field(f, out, max, limits);
}
bool read_mention_names(FieldReader& f, const MsgpackNode& array, std::string_view what,
                        std::vector<std::string>& out, std::size_t max, const Limits& limits) {
  return read_names(f, array, what, out, max, limits);
}

// ---- requests --------------------------------------------------------------------

DecodedRequest decode_request(std::string_view frame, const Limits& limits) {
  auto handle = unpack_map(frame, limits);
  if (!handle) return {0, handle.error()};
  FieldReader f(handle->root());
  std::uint64_t id = 0;
  if (const MsgpackNode* o = f.find("id")) {
    if (!o->is(MsgpackType::positive_integer))
      return {0, make_error(errc::bad_field, "field 'id' must be an unsigned integer, got " + type_name(*o))};
    id = o->via.u64;
  } else {
    return {0, make_error(errc::bad_field, "missing field 'id' (request id)")};
  }
  auto op = read_envelope(f);
  if (!op) return {id, op.error()};
  std::optional<std::string> as;
  read_as(f, as, limits);

  auto done = [&](RequestBody body) -> DecodedRequest {
    if (!f.ok()) return {id, f.error()};
    return {id, std::move(body), std::move(as)};
  };
  const std::string& name = *op;
  if (name == "hello") return done(Hello{});
  if (name == "ping") return done(Ping{});
  if (name == "shards") return done(ListShards{});
  if (name == "backup") {
    Backup b;
    f.opt_u64("backup", b.backup);
    if (f.ok() && b.backup == std::uint64_t{0}) f.fail(errc::bad_field, "field 'backup' must be a backup's id, not 0");
    if (f.ok() && b.backup) f.u64("offset", b.offset);
    else if (f.ok() && f.find("offset")) f.fail(errc::bad_field, "field 'offset' needs 'backup' (the backup it is of)");
    return done(std::move(b));
  }
  if (name == "create_room" || name == "join" || name == "leave" || name == "remove_member" || name == "ban" ||
      name == "unban") {
    std::string room, user;
    f.name("room", room, limits.max_room) && f.name("user", user, limits.max_user);
    if (name == "create_room") {
      CreateRoom c{room, user};
      if (f.find("private")) f.boolean("private", c.private_room);
      return done(std::move(c));
    }
    if (name == "join") {
      Join j{room, user};
      if (f.find("invited")) f.boolean("invited", j.invited);
      return done(std::move(j));
    }
    if (name == "remove_member") return done(RemoveMember{room, user});
    if (name == "ban") return done(Ban{room, user});
    if (name == "unban") return done(Unban{room, user});
    return done(Leave{room, user});
  }
  if (name == "add_member" || name == "set_role") {
    std::string room, user;
    Role role = Role::member;
    f.name("room", room, limits.max_room) && f.name("user", user, limits.max_user);
    if (name == "set_role" || f.find("role")) read_role(f, role);
    if (name == "add_member") return done(AddMember{room, user, role});
    return done(SetRole{room, user, role});
  }
  if (name == "delete_room") {
    DeleteRoom d;
    f.name("room", d.room, limits.max_room);
    return done(std::move(d));
  }
  if (name == "mark_read") {
    MarkRead r;
    f.name("room", r.room, limits.max_room) && f.name("user", r.user, limits.max_user) && f.u64("seq", r.seq);
    return done(std::move(r));
  }
  if (name == "kick") {
    Kick r;
    f.name("room", r.room, limits.max_room) && f.name("user", r.user, limits.max_user);
    return done(std::move(r));
  }
  if (name == "disconnect") {
    Disconnect r;
    f.name("user", r.user, limits.max_user);
    return done(std::move(r));
  }
  if (name == "set_notify") {
    SetNotify r;
    std::string level;
    if (f.name("room", r.room, limits.max_room) && f.name("user", r.user, limits.max_user) &&
        f.text("level", level, 16)) {
      if (auto l = notify_level_from_name(level)) r.level = *l;
      else f.fail(errc::bad_field, "field 'level' must be 'all', 'mentions', 'none' or 'default'");
    }
    return done(std::move(r));
  }
  if (name == "set_receipts") {
    SetReceipts r;
    f.name("room", r.room, limits.max_room) && f.boolean("receipts", r.receipts);
    return done(std::move(r));
  }
  if (name == "set_retention") {
    SetRetention r;
    f.name("room", r.room, limits.max_room) && f.opt_u64("max_age_s", r.max_age_s) &&
        f.opt_u64("max_messages", r.max_messages);
    if (f.ok() && f.find("legal_hold")) {
      bool hold = false;
      f.boolean("legal_hold", hold);
      r.legal_hold = hold;
    }
    return done(std::move(r));
  }
  if (name == "trim_history") {
    TrimHistory r;
    f.name("room", r.room, limits.max_room) && f.u64("before", r.before);
    return done(std::move(r));
  }
  if (name == "import_batch") {
    ImportBatch b;
    MsgpackElements items;
    f.name("room", b.room, limits.max_room) && f.u64("first_seq", b.first_seq) && f.array("items", items);
    if (f.ok() && b.first_seq == 0) f.fail(errc::bad_field, "field 'first_seq' must be 1 or more");
    const std::size_t count = items.size();
    if (f.ok() && (count == 0 || count > limits.max_publish_batch))
      f.fail(count == 0 ? errc::bad_field : errc::too_large,
             "field 'items' holds " + std::to_string(count) + " items; an import_batch carries 1 to " +
                 std::to_string(limits.max_publish_batch));
    if (f.ok()) b.items.resize(count);
    // Each item [user, ts, cmid, body] or [user, ts, cmid, body, mentions], checked as a
    // publish's fields are; the first bad one fails the frame, naming its index.
    auto item = items.begin();
    for (std::size_t i = 0; i < count && f.ok(); ++i, ++item) {
      const std::string at = "items[" + std::to_string(i) + "]";
      const MsgpackNode* user = &*item + 1;
      const MsgpackNode* ts = item->size >= 4 ? user->next() : nullptr;
      const MsgpackNode* cmid = ts ? ts->next() : nullptr;
      const MsgpackNode* body = cmid ? cmid->next() : nullptr;
      if (!item->is(MsgpackType::array) || item->size < 4 || item->size > 5 || !user->is(MsgpackType::str) ||
          !ts->is(MsgpackType::positive_integer) || !cmid->is(MsgpackType::str) || !body->is(MsgpackType::str)) {
        f.fail(errc::bad_field, at + " must be [user, ts, cmid, body] or [user, ts, cmid, body, mentions]");
        break;
      }
      ImportItem& out = b.items[i];
      out.user = std::string(user->view());
      out.ts_ms = ts->via.u64;
      out.client_msg_id = std::string(cmid->view());
      out.body = std::string(body->view());
      if (!valid_name(out.user) || out.user.size() > limits.max_user)
        f.fail(errc::bad_field, at + ": the user must be a name without control characters, at most " +
                                    std::to_string(limits.max_user) + " bytes");
      else if (out.client_msg_id.empty()) f.fail(errc::bad_field, at + ": the cmid must not be empty");
      else if (out.client_msg_id.size() > limits.max_client_msg_id || out.body.size() > limits.max_body)
        f.fail(errc::too_large, at + ": the " + (out.body.size() > limits.max_body ? "body" : "cmid") +
                                    " is longer than the limit");
      else if (!valid_utf8(out.client_msg_id) || !valid_utf8(out.body)) f.fail(errc::bad_utf8, at + " is not valid UTF-8");
      else if (item->size == 5)
        read_mention_names(f, *body->next(), at + ": mentions", out.mentions, limits.max_mentions, limits);
    }
    return done(std::move(b));
  }
  if (name == "read_markers") {
    ReadMarkers r;
    f.name("room", r.room, limits.max_room);
    return done(std::move(r));
  }
  if (name == "rooms") {
    ListRooms r;
    f.opt_text("user", r.user, limits.max_user);
    if (r.user && !valid_name(*r.user)) f.fail(errc::bad_field, "field 'user' must be a non-empty name without control characters");
    if (f.ok()) read_summary_page(f, r, limits);
    return done(std::move(r));
  }
  if (name == "members") {
    Members m;
    f.name("room", m.room, limits.max_room);
    return done(std::move(m));
  }
  if (name == "publish") {
    Publish p;
    f.name("room", p.room, limits.max_room) && f.name("user", p.user, limits.max_user) &&
        f.text("cmid", p.client_msg_id, limits.max_client_msg_id) && read_publish_kind(f, p);
    const bool body = p.kind == EntryKind::message || p.kind == EntryKind::edit;
    if (f.ok() && body) f.text("body", p.body, limits.max_body) && read_mentions(f, p.mentions, limits.max_mentions, limits);
    if (f.ok() && p.client_msg_id.empty()) f.fail(errc::bad_field, "field 'cmid' must not be empty");
    return done(std::move(p));
  }
  if (name == "publish_batch") {
    PublishBatch b;
    MsgpackElements items;
    f.name("room", b.room, limits.max_room) && f.name("user", b.user, limits.max_user) && f.array("items", items);
    const std::size_t count = items.size();
    if (f.ok() && (count == 0 || count > limits.max_publish_batch))
      f.fail(count == 0 ? errc::bad_field : errc::too_large,
             "field 'items' holds " + std::to_string(count) + " items; a publish_batch carries 1 to " +
                 std::to_string(limits.max_publish_batch));
    if (f.ok()) b.items.resize(count);
    // Each item [cmid, body] or [cmid, body, mentions], checked as a publish's fields
    // are; the first bad one fails the frame, naming its index, and nothing of the frame
    // is stored.
    auto item = items.begin();
    for (std::size_t i = 0; i < count && f.ok(); ++i, ++item) {
      const std::string at = "items[" + std::to_string(i) + "]";
      const MsgpackNode* first = &*item + 1;
      if (!item->is(MsgpackType::array) || item->size < 2 || item->size > 3 || !first->is(MsgpackType::str) ||
          !first->next()->is(MsgpackType::str)) {
        f.fail(errc::bad_field, at + " must be [cmid, body] or [cmid, body, mentions]: two strings, then an array");
        break;
      }
      const std::string_view cmid = first->view(), body = first->next()->view();
      if (cmid.empty()) f.fail(errc::bad_field, at + ": the cmid must not be empty");
      else if (cmid.size() > limits.max_client_msg_id || body.size() > limits.max_body)
        f.fail(errc::too_large, at + ": " + (cmid.size() > limits.max_client_msg_id ? "the cmid" : "the body") +
                                    " is longer than the limit (" +
                                    std::to_string(cmid.size() > limits.max_client_msg_id ? limits.max_client_msg_id
                                                                                         : limits.max_body) +
                                    " bytes)");
      else if (!valid_utf8(cmid) || !valid_utf8(body)) f.fail(errc::bad_utf8, at + " is not valid UTF-8");
      else {
        b.items[i] = PublishItem{std::string(cmid), std::string(body)};
        if (item->size == 3) read_mention_names(f, *first->next()->next(), at + ": mentions", b.items[i].mentions,
                             limits.max_mentions, limits);
      }
    }
    return done(std::move(b));
  }
  if (name == "history") {
    History h;
    read_history_request(f, h, limits);
    return done(std::move(h));
  }
  if (name == "last_seq") {
    LastSeq l;
    f.name("room", l.room, limits.max_room);
    return done(std::move(l));
  }
  if (name == "call") {
    Call c;
    f.name("service", c.service, kMaxServiceName) && f.name("user", c.user, limits.max_user) &&
        f.text("body", c.body, limits.max_body);
    return done(std::move(c));
  }
  return {id, make_error(errc::unknown_op, "unknown op '" + name + "'")};
}

const char* op_name(const RequestBody& body) noexcept { return traits(body).name.data(); }

const char* op_name(const ReplyBody& body) noexcept {
  static constexpr std::array<const char*, std::variant_size_v<ReplyBody>> names = {
      "hello", "ping", "create_room", "join", "leave", "rooms", "members", "publish", "history", "last_seq",
      "call", "error", "add_member", "remove_member", "set_role", "delete_room", "shards", "publish_batch",
      "mark_read", "set_receipts", "read_markers", "backup", "set_retention", "import_batch", "trim_history",
      "ban", "unban", "set_notify", "kick", "disconnect"};
  static_assert(names.back() != nullptr, "a reply without its op name");
  return names[body.index()];
}

std::string encode_request(const Request& request) {
  FrameBuffer buffer(128);
  Packer pk(buffer);
  const char* op = op_name(request.body);
  // The envelope, with `as` when the request has one, and `fields` fields after it.
  auto header = [&](std::uint32_t fields) {
    pack_header(pk, fields + (request.as ? 1 : 0), op, request.id);
    if (request.as) pack_field(pk, "as", *request.as);
  };
  auto pack_member_role = [&](const std::string& room, const std::string& user, Role role) {
    header(3);
    pack_field(pk, "room", room);
    pack_field(pk, "user", user);
    pack_field(pk, "role", role_name(role));
  };
  std::visit(Overloaded{
                 [&](const Hello&) { header(0); },
                 [&](const Ping&) { header(0); },
                 [&](const ListShards&) { header(0); },
                 [&](const CreateRoom& r) {
                   header(r.private_room ? 3 : 2);
                   pack_field(pk, "room", r.room);
                   pack_field(pk, "user", r.user);
                   if (r.private_room) pack_field(pk, "private", true);
                 },
                 [&](const Join& r) {
                   header(r.invited ? 3 : 2);
                   pack_field(pk, "room", r.room);
                   pack_field(pk, "user", r.user);
                   if (r.invited) pack_field(pk, "invited", true);
                 },
                 [&](const PublishBatch& r) {
                   header(3);
                   pack_field(pk, "room", r.room);
                   pack_field(pk, "user", r.user);
                   pk.pack(std::string_view("items"));
                   pk.pack_array(static_cast<std::uint32_t>(r.items.size()));
                   for (const auto& item : r.items) {
                     pk.pack_array(item.mentions.empty() ? 2 : 3);
                     pk.pack(item.client_msg_id);
                     pk.pack(item.body);
                     if (!item.mentions.empty()) pk.pack(item.mentions);
                   }
                 },
                 [&](const Kick& r) {
                   header(2);
                   pack_field(pk, "room", r.room);
                   pack_field(pk, "user", r.user);
                 },
                 [&](const Disconnect& r) {
                   header(1);
                   pack_field(pk, "user", r.user);
                 },
                 [&](const SetNotify& r) {
                   header(3);
                   pack_field(pk, "room", r.room);
                   pack_field(pk, "user", r.user);
                   pack_field(pk, "level", notify_level_name(r.level));
                 },
                 [&](const SetReceipts& r) {
                   header(2);
                   pack_field(pk, "room", r.room);
                   pack_field(pk, "receipts", r.receipts);
                 },
                 [&](const SetRetention& r) {
                   header(1 + (r.max_age_s ? 1 : 0) + (r.max_messages ? 1 : 0) + (r.legal_hold ? 1 : 0));
                   pack_field(pk, "room", r.room);
                   if (r.max_age_s) pack_field(pk, "max_age_s", *r.max_age_s);
                   if (r.max_messages) pack_field(pk, "max_messages", *r.max_messages);
                   if (r.legal_hold) pack_field(pk, "legal_hold", *r.legal_hold);
                 },
                 [&](const TrimHistory& r) {
                   header(2);
                   pack_field(pk, "room", r.room);
                   pack_field(pk, "before", r.before);
                 },
                 [&](const ImportBatch& r) {
                   header(3);
                   pack_field(pk, "room", r.room);
                   pack_field(pk, "first_seq", r.first_seq);
                   pk.pack(std::string_view("items"));
                   pk.pack_array(static_cast<std::uint32_t>(r.items.size()));
                   for (const auto& item : r.items) {
                     pk.pack_array(item.mentions.empty() ? 4 : 5);
                     pk.pack(item.user);
                     pk.pack(item.ts_ms);
                     pk.pack(item.client_msg_id);
                     pk.pack(item.body);
                     if (!item.mentions.empty()) pk.pack(item.mentions);
                   }
                 },
                 [&](const AddMember& r) { pack_member_role(r.room, r.user, r.role); },
                 [&](const SetRole& r) { pack_member_role(r.room, r.user, r.role); },
                 [&](const auto& r) requires requires { r.room; r.user; } {
                   header(2);
                   pack_field(pk, "room", r.room);
                   pack_field(pk, "user", r.user);
                 },
                 [&](const MarkRead& r) {
                   header(3);
                   pack_field(pk, "room", r.room);
                   pack_field(pk, "user", r.user);
                   pack_field(pk, "seq", r.seq);
                 },
                 [&](const ListRooms& r) {
                   header((r.user ? 1 : 0) + (r.limit ? 1 : 0) + (r.after ? 2 : 0));
                   if (r.user) pack_field(pk, "user", *r.user);
                   if (r.limit) pack_field(pk, "limit", r.limit);
                   if (r.after) {
                     pack_field(pk, "after_ts", r.after->ts_ms);
                     pack_field(pk, "after_room", r.after->room);
                   }
                 },
                 [&](const auto& r) requires(std::is_same_v<std::decay_t<decltype(r)>, Members> ||
                                             std::is_same_v<std::decay_t<decltype(r)>, LastSeq> ||
                                             std::is_same_v<std::decay_t<decltype(r)>, DeleteRoom> ||
                                             std::is_same_v<std::decay_t<decltype(r)>, ReadMarkers>) {
                   header(1);
                   pack_field(pk, "room", r.room);
                 },
                 [&](const Publish& r) {
                   const bool lifecycle = r.kind != EntryKind::message;
                   const bool react = r.kind == EntryKind::react;
                   const bool body = !lifecycle || r.kind == EntryKind::edit;
                   header(3 + body + !r.mentions.empty() + (lifecycle ? 2 : 0) + (react ? 2 : 0) + (r.reply_to != 0) +
                          (r.thread != 0));
                   pack_field(pk, "room", r.room);
                   pack_field(pk, "user", r.user);
                   pack_field(pk, "cmid", r.client_msg_id);
                   if (body) pack_field(pk, "body", r.body);
                   if (!r.mentions.empty()) pack_field(pk, "mentions", r.mentions);
                   if (r.reply_to != 0) pack_field(pk, "reply_to", r.reply_to);
                   if (r.thread != 0) pack_field(pk, "thread", r.thread);
                   if (lifecycle) {
                     pack_field(pk, "kind", entry_kind_name(r.kind));
                     pack_field(pk, "target", r.target);
                   }
                   if (react) {
                     pack_field(pk, "key", r.key);
                     pack_field(pk, "on", r.on);
                   }
                 },
                 [&](const History& r) {
                   header(1 + (r.limit ? 1 : 0) + (r.before ? 1 : 0) + (r.after ? 1 : 0) + (r.thread ? 1 : 0));
                   pack_field(pk, "room", r.room);
                   if (r.limit) pack_field(pk, "limit", r.limit);
                   if (r.before) pack_field(pk, "before", *r.before);
                   if (r.after) pack_field(pk, "after", *r.after);
                   if (r.thread) pack_field(pk, "thread", r.thread);
                 },
                 [&](const Backup& r) {
                   header(r.backup ? 2 : 0);
                   if (!r.backup) return;
                   pack_field(pk, "backup", *r.backup);
                   pack_field(pk, "offset", r.offset);
                 },
                 [&](const Call& r) {
                   header(3);
                   pack_field(pk, "service", r.service);
                   pack_field(pk, "user", r.user);
                   pack_field(pk, "body", r.body);
                 },
             },
             request.body);
  return std::move(buffer.bytes);
}

// ---- replies ---------------------------------------------------------------------

std::string encode_reply(const Reply& reply) {
  const auto* chunk = std::get_if<BackupOk>(&reply.body);
  FrameBuffer buffer(chunk ? chunk->data.size() + 128 : 128);
  Packer pk(buffer);
  const char* op = op_name(reply.body);
  std::visit(Overloaded{
                 [&](const HelloOk& r) {
                   pack_header(pk, 7, op, reply.id);
                   pack_field(pk, "protocol", r.protocol);
                   pack_field(pk, "node", r.node);
                   pack_field(pk, "pub", r.pub);
                   pack_field(pk, "max_body", r.max_body);
                   pack_field(pk, "presence", r.presence);
                   pack_field(pk, "presence_pub", r.presence_pub);
                   pack_field(pk, "max_batch", r.max_batch);
                 },
                 [&](const PingOk&) { pack_header(pk, 0, op, reply.id); },
                 [&](const CreateRoomOk& r) {
                   pack_header(pk, 1, op, reply.id);
                   pack_field(pk, "created", r.created);
                 },
                 [&](const JoinOk& r) {
                   pack_header(pk, 1, op, reply.id);
                   pack_field(pk, "joined", r.joined);
                 },
                 [&](const LeaveOk& r) {
                   pack_header(pk, 1, op, reply.id);
                   pack_field(pk, "left", r.left);
                 },
                 [&](const ShardsOk& r) {
                   pack_header(pk, r.missing.empty() ? 1 : 2, op, reply.id);
                   pk.pack(std::string_view("shards"));
                   pk.pack_array(static_cast<std::uint32_t>(r.shards.size()));
                   for (const auto& s : r.shards) {
                     pk.pack_map(7);
                     pack_field(pk, "name", s.name);
                     pack_field(pk, "primary", s.primary);
                     pack_field(pk, "ack", s.ack);
                     pack_field(pk, "term", s.term);
                     pack_field(pk, "lsn", s.lsn);
                     pack_field(pk, "primary_up", s.primary_up);
                     pk.pack(std::string_view("replicas"));
                     pk.pack_array(static_cast<std::uint32_t>(s.replicas.size()));
                     for (const auto& rep : s.replicas) {
                       pk.pack_map(3);
                       pack_field(pk, "node", rep.node);
                       pack_field(pk, "lsn", rep.lsn);
                       pack_field(pk, "up", rep.up);
                     }
                   }
                   if (!r.missing.empty()) pack_field(pk, "missing", r.missing);
                 },
                 [&](const RoomsOk& r) {
                   const bool summaries = !r.summaries.empty();
                   pack_header(pk,
                               1 + (r.missing.empty() ? 0 : 1) + (r.missing_shards.empty() ? 0 : 1) +
                                   (summaries ? 1 : 0) + (r.more ? 1 : 0),
                               op, reply.id);
                   pack_field(pk, "rooms", r.rooms);
                   if (!r.missing.empty()) pack_field(pk, "missing", r.missing);
                   if (!r.missing_shards.empty()) pack_field(pk, "missing_shards", r.missing_shards);
                   if (r.more) pack_field(pk, "more", true);
                   if (!summaries) return;
                   pk.pack(std::string_view("summaries"));
                   pk.pack_array(static_cast<std::uint32_t>(r.summaries.size()));
                   for (const RoomSummary& m : r.summaries) {
                     pk.pack_map(m.private_room ? 10 : 9);
                     pack_field(pk, "room", m.room);
                     pack_field(pk, "role", role_name(m.role));
                     pack_field(pk, "last_seq", m.last_seq);
                     pack_field(pk, "last_ts", m.last_ts_ms);
                     pack_field(pk, "last_user", m.last_user);
                     pack_field(pk, "preview", m.preview);
                     pack_field(pk, "read_seq", m.read_seq);
                     pack_field(pk, "unread", m.unread);
                     pack_field(pk, "mentions", m.mentions);
                     if (m.private_room) pack_field(pk, "private", true);
                   }
                 },
                 [&](const BackupOk& r) {
                   pack_header(pk, 5, op, reply.id);
                   pack_field(pk, "backup", r.backup);
                   pack_field(pk, "offset", r.offset);
                   pack_bin_field(pk, "data", r.data);
                   pack_field(pk, "done", r.done);
                   pack_field(pk, "estimate", r.estimate);
                 },
                 [&](const KickOk& r) {
                   pack_header(pk, 1, op, reply.id);
                   pack_field(pk, "removed", r.removed);
                 },
                 [&](const DisconnectOk&) { pack_header(pk, 0, op, reply.id); },
                 [&](const SetNotifyOk& r) {
                   pack_header(pk, 3, op, reply.id);
                   pack_field(pk, "room", r.room);
                   pack_field(pk, "level", notify_level_name(r.level));
                   pack_field(pk, "effective", notify_level_name(r.effective));
                 },
                 [&](const SetReceiptsOk& r) {
                   pack_header(pk, 1, op, reply.id);
                   pack_field(pk, "changed", r.changed);
                 },
                 [&](const SetRetentionOk& r) {
                   pack_header(pk, 7, op, reply.id);
                   pack_field(pk, "room", r.room);
                   pack_field(pk, "max_age_s", r.max_age_s);
                   pack_field(pk, "max_messages", r.max_messages);
                   pack_field(pk, "legal_hold", r.legal_hold);
                   pack_field(pk, "applied_max_age_s", r.applied_max_age_s);
                   pack_field(pk, "applied_max_messages", r.applied_max_messages);
                   pack_field(pk, "first_seq", r.first_seq);
                 },
                 [&](const TrimHistoryOk& r) {
                   pack_header(pk, 2, op, reply.id);
                   pack_field(pk, "room", r.room);
                   pack_field(pk, "first_seq", r.first_seq);
                 },
                 [&](const ImportBatchOk& r) {
                   pack_header(pk, 3, op, reply.id);
                   pack_field(pk, "room", r.room);
                   pack_field(pk, "first_seq", r.first_seq);
                   pack_field(pk, "last_seq", r.last_seq);
                 },
                 [&](const ReadMarkersOk& r) {
                   pack_header(pk, 2, op, reply.id);
                   pack_field(pk, "room", r.room);
                   pk.pack(std::string_view("markers"));
                   pk.pack_array(static_cast<std::uint32_t>(r.markers.size()));
                   for (const auto& m : r.markers) {
                     pk.pack_map(2);
                     pack_field(pk, "user", m.user);
                     pack_field(pk, "seq", m.seq);
                   }
                 },
                 [&](const MarkReadOk& r) {
                   pack_header(pk, 3, op, reply.id);
                   pack_field(pk, "room", r.room);
                   pack_field(pk, "seq", r.seq);
                   pack_field(pk, "unread", r.unread);
                 },
                 [&](const MembersOk& r) {
                   const bool roles = r.roles.size() == r.members.size();  // else: not known
                   pack_header(pk, roles ? 2 : 1, op, reply.id);
                   pack_field(pk, "members", r.members);
                   if (!roles) return;
                   pk.pack(std::string_view("roles"));
                   pk.pack_array(static_cast<std::uint32_t>(r.roles.size()));
                   for (Role role : r.roles) pk.pack(role_name(role));
                 },
                 [&](const AddMemberOk& r) {
                   pack_header(pk, 1, op, reply.id);
                   pack_field(pk, "added", r.added);
                 },
                 [&](const RemoveMemberOk& r) {
                   pack_header(pk, 1, op, reply.id);
                   pack_field(pk, "removed", r.removed);
                 },
                 [&](const BanOk& r) {
                   pack_header(pk, 1, op, reply.id);
                   pack_field(pk, "banned", r.banned);
                 },
                 [&](const UnbanOk& r) {
                   pack_header(pk, 1, op, reply.id);
                   pack_field(pk, "unbanned", r.unbanned);
                 },
                 [&](const SetRoleOk& r) {
                   pack_header(pk, 1, op, reply.id);
                   pack_field(pk, "changed", r.changed);
                 },
                 [&](const DeleteRoomOk& r) {
                   pack_header(pk, 1, op, reply.id);
                   pack_field(pk, "deleted", r.deleted);
                 },
                 [&](const PublishOk& r) {
                   pack_header(pk, 4, op, reply.id);
                   pack_field(pk, "room", r.room);
                   pack_field(pk, "seq", r.seq);
                   pack_field(pk, "ts", r.ts_ms);
                   pack_field(pk, "duplicate", r.duplicate);
                 },
                 [&](const PublishBatchOk& r) {
                   pack_header(pk, 2, op, reply.id);
                   pack_field(pk, "room", r.room);
                   pk.pack(std::string_view("results"));
                   pk.pack_array(static_cast<std::uint32_t>(r.results.size()));
                   for (const auto& item : r.results) {
                     if (item.code == errc::ok) {
                       pk.pack_array(3);
                       pk.pack(item.seq);
                       pk.pack(item.ts_ms);
                       pk.pack(item.duplicate);
                     } else {
                       pk.pack_array(2);
                       pk.pack(errc_name(item.code));
                       pk.pack(item.message);
                     }
                   }
                 },
                 [&](const HistoryOk& r) {
                   pack_header(pk, r.first_seq != 0 ? 4 : 2, op, reply.id);
                   pk.pack(std::string_view("messages"));
                   pk.pack_array(static_cast<std::uint32_t>(r.messages.size()));
                   for (const auto& m : r.messages) pack_message(buffer, m);
                   pack_field(pk, "more", r.more);
                   if (r.first_seq != 0) {
                     pack_field(pk, "truncated", true);
                     pack_field(pk, "first_seq", r.first_seq);
                   }
                 },
                 [&](const LastSeqOk& r) {
                   pack_header(pk, 2, op, reply.id);
                   pack_field(pk, "room", r.room);
                   pack_field(pk, "seq", r.seq);
                 },
                 [&](const CallOk& r) {
                   pack_header(pk, 2, op, reply.id);
                   pack_field(pk, "service", r.service);
                   pack_field(pk, "body", r.body);
                 },
                 [&](const ErrorReply& r) {
                   pack_header(pk, kErrorFields, op, reply.id);
                   pack_error_fields(pk, r);
                 },
             },
             reply.body);
  return std::move(buffer.bytes);
}

Result<Reply> decode_reply(std::string_view frame, const Limits& limits) {
  auto read = ReplyFrame::read(frame, limits);
  if (!read) return read.error();
  return read->reply();
}

ReplyFrame::ReplyFrame(MsgpackReader reader, std::string_view frame, const Limits& limits, std::uint64_t id,
                       std::string op)
    : reader_(std::move(reader)), frame_(frame), limits_(limits), id_(id), op_(std::move(op)) {}

Result<ReplyFrame> ReplyFrame::read(std::string_view frame, const Limits& limits) {
  auto handle = unpack_map(frame, limits);
  if (!handle) return handle.error();
  FieldReader f(handle->root());
  std::uint64_t id = 0;
  if (!f.u64("id", id)) return f.error();
  auto op = read_envelope(f);
  if (!op) return op.error();
  return ReplyFrame(std::move(*handle), frame, limits, id, std::move(*op));
}

Result<HistoryPage> ReplyFrame::history_page() const {
  FieldReader f(reader_.root());
  if (op_ == "error") {
    ErrorReply e = read_error_fields(f, limits_);
    if (!f.ok()) return f.error();
    return make_error(e.code, std::move(e.message));
  }
  if (op_ != "history") return make_error(errc::unknown_op, "a '" + op_ + "' reply where a history page was due");
  HistoryPage page;
  std::optional<std::uint64_t> first_seq;
  if (!read_history_messages(f, page.messages, limits_) || !f.boolean("more", page.more) ||
      !f.opt_u64("first_seq", first_seq))
    return f.error();
  page.first_seq = first_seq.value_or(0);
  // The views point into the frame; move them onto a copy of it that the page keeps.
  auto bytes = std::make_shared<std::string>(frame_);
  const char* from = frame_.data();
  const char* to = bytes->data();
  auto rebase = [&](std::string_view& v) { v = std::string_view(to + (v.data() - from), v.size()); };
  for (MessageView& m : page.messages) {
    rebase(m.room);
    rebase(m.user);
    rebase(m.body);
    rebase(m.client_msg_id);
    for (auto& name : m.mentions) rebase(name);
  }
  page.bytes = std::move(bytes);
  return page;
}

Result<Reply> ReplyFrame::reply() const {
  FieldReader f(reader_.root());
  const Limits& limits = limits_;
  Reply reply;
  reply.id = id_;
  const std::string& name = op_;
  auto done = [&](ReplyBody body) -> Result<Reply> {
    if (!f.ok()) return f.error();
    reply.body = std::move(body);
    return reply;
  };
  if (name == "hello") {
    HelloOk r;
    std::uint64_t protocol = 0;
    f.u64("protocol", protocol) && f.text("node", r.node, limits.max_room) &&
        f.text_array("pub", r.pub, 1024) && f.u64("max_body", r.max_body) &&
        f.text_array("presence", r.presence, 1024) && f.text_array("presence_pub", r.presence_pub, 1024);
    if (f.ok() && f.find("max_batch")) f.u64("max_batch", r.max_batch);  // nodes before publish_batch: none
    r.protocol = static_cast<std::uint32_t>(protocol);
    return done(std::move(r));
  }
  if (name == "ping") return done(PingOk{});
  if (name == "create_room") { CreateRoomOk r; f.boolean("created", r.created); return done(r); }
  if (name == "join") { JoinOk r; f.boolean("joined", r.joined); return done(r); }
  if (name == "leave") { LeaveOk r; f.boolean("left", r.left); return done(r); }
  if (name == "rooms") {
    RoomsOk r;
    f.text_array("rooms", r.rooms, limits.max_room);
    if (f.find("missing")) f.text_array("missing", r.missing, limits.max_user);
    if (f.ok() && f.find("missing_shards")) f.text_array("missing_shards", r.missing_shards, kMaxServiceName);
    if (f.ok() && f.find("more")) f.boolean("more", r.more);
    if (f.ok() && f.find("summaries"))
      read_maps(f, "summaries", "summaries must be maps", r.summaries, [&](FieldReader& sf, RoomSummary& s) {
        return sf.name("room", s.room, limits.max_room) && read_role(sf, s.role) && sf.u64("last_seq", s.last_seq) &&
               sf.u64("last_ts", s.last_ts_ms) && sf.text("last_user", s.last_user, limits.max_user) &&
               sf.text("preview", s.preview, limits.max_body) && sf.u64("read_seq", s.read_seq) &&
               sf.u64("unread", s.unread) && (!sf.find("mentions") || sf.u64("mentions", s.mentions)) &&
               (!sf.find("private") || sf.boolean("private", s.private_room));
      });
    return done(std::move(r));
  }
  if (name == "backup") {
    BackupOk r;
    f.u64("backup", r.backup) && f.u64("offset", r.offset) && f.bytes("data", r.data, limits.max_frame) &&
        f.boolean("done", r.done) && f.u64("estimate", r.estimate);
    return done(std::move(r));
  }
  if (name == "set_receipts") { SetReceiptsOk r; f.boolean("changed", r.changed); return done(r); }
  if (name == "kick") { KickOk r; f.boolean("removed", r.removed); return done(r); }
  if (name == "disconnect") return done(DisconnectOk{});
  if (name == "set_notify") {
    SetNotifyOk r;
    std::string level, effective;
    if (f.name("room", r.room, limits.max_room) && f.text("level", level, 16) && f.text("effective", effective, 16)) {
      auto l = notify_level_from_name(level);
      auto e = notify_level_from_name(effective);
      if (!l || !e || *e == NotifyLevel::room_default) f.fail(errc::bad_field, "set_notify: an unknown level");
      else r.level = *l, r.effective = *e;
    }
    return done(std::move(r));
  }
  if (name == "set_retention") {
    SetRetentionOk r;
    f.name("room", r.room, limits.max_room) && f.u64("max_age_s", r.max_age_s) &&
        f.u64("max_messages", r.max_messages) && f.boolean("legal_hold", r.legal_hold) &&
        f.u64("applied_max_age_s", r.applied_max_age_s) && f.u64("applied_max_messages", r.applied_max_messages) &&
        f.u64("first_seq", r.first_seq);
    return done(std::move(r));
  }
  if (name == "trim_history") {
    TrimHistoryOk r;
    f.name("room", r.room, limits.max_room) && f.u64("first_seq", r.first_seq);
    return done(std::move(r));
  }
  if (name == "import_batch") {
    ImportBatchOk r;
    f.name("room", r.room, limits.max_room) && f.u64("first_seq", r.first_seq) && f.u64("last_seq", r.last_seq);
    return done(std::move(r));
  }
  if (name == "read_markers") {
    ReadMarkersOk r;
    f.name("room", r.room, limits.max_room) &&
        read_maps(f, "markers", "markers must be maps", r.markers, [&](FieldReader& mf, ReadMarker& m) {
          return mf.name("user", m.user, limits.max_user) && mf.u64("seq", m.seq);
        });
    return done(std::move(r));
  }
  if (name == "mark_read") {
    MarkReadOk r;
    f.name("room", r.room, limits.max_room) && f.u64("seq", r.seq) && f.u64("unread", r.unread);
    return done(std::move(r));
  }
  if (name == "shards") {
    ShardsOk r;
    MsgpackElements items;
    // Each item a map of the fields above; a replica's `items` likewise.
    auto maps = [&](FieldReader& from, const char* key, MsgpackElements& out) {
      if (!from.array(key, out)) return false;
      for (const MsgpackNode& item : out)
        if (!item.is(MsgpackType::map)) {
          from.fail(errc::bad_field, std::string("'") + key + "' must be maps");
          return false;
        }
      return true;
    };
    if (maps(f, "shards", items)) {
      r.shards.resize(items.size());
      auto item = items.begin();
      for (std::size_t i = 0; i < items.size() && f.ok(); ++i, ++item) {
        FieldReader sf(*item);
        ShardInfo& s = r.shards[i];
        MsgpackElements replicas;
        if (sf.name("name", s.name, limits.max_room) && sf.text("primary", s.primary, limits.max_user) &&
            sf.text("ack", s.ack, 16) && sf.u64("term", s.term) && sf.u64("lsn", s.lsn) &&
            sf.boolean("primary_up", s.primary_up) && maps(sf, "replicas", replicas)) {
          s.replicas.resize(replicas.size());
          auto replica = replicas.begin();
          for (std::size_t j = 0; j < replicas.size() && sf.ok(); ++j, ++replica) {
            FieldReader rf(*replica);
            rf.name("node", s.replicas[j].node, limits.max_user) && rf.u64("lsn", s.replicas[j].lsn) &&
                rf.boolean("up", s.replicas[j].up);
            if (!rf.ok()) sf.fail(rf.error().code, rf.error().message);
          }
        }
        if (!sf.ok()) f.fail(sf.error().code, sf.error().message);
      }
    }
    if (f.ok() && f.find("missing")) f.text_array("missing", r.missing, limits.max_user);
    return done(std::move(r));
  }
  if (name == "members") {
    MembersOk r;
    std::vector<std::string> roles;
    // Nodes from before roles send none.
    f.text_array("members", r.members, limits.max_user) && (!f.find("roles") || f.text_array("roles", roles, 16));
    if (f.ok() && f.find("roles") && roles.size() != r.members.size())
      f.fail(errc::bad_field, "'roles' must have one role per member");
    for (const auto& name : roles) {
      if (!f.ok()) break;
      if (auto role = role_from_name(name)) r.roles.push_back(*role);
      else f.fail(errc::bad_field, "unknown role '" + name + "'");
    }
    return done(std::move(r));
  }
  if (name == "add_member") { AddMemberOk r; f.boolean("added", r.added); return done(r); }
  if (name == "remove_member") { RemoveMemberOk r; f.boolean("removed", r.removed); return done(r); }
  if (name == "ban") { BanOk r; f.boolean("banned", r.banned); return done(r); }
  if (name == "unban") { UnbanOk r; f.boolean("unbanned", r.unbanned); return done(r); }
  if (name == "set_role") { SetRoleOk r; f.boolean("changed", r.changed); return done(r); }
  if (name == "delete_room") { DeleteRoomOk r; f.boolean("deleted", r.deleted); return done(r); }
  if (name == "publish") {
    PublishOk r;
    f.name("room", r.room, limits.max_room) && f.u64("seq", r.seq) && f.u64("ts", r.ts_ms) &&
        f.boolean("duplicate", r.duplicate);
    return done(std::move(r));
  }
  if (name == "publish_batch") {
    PublishBatchOk r;
    MsgpackElements items;
    if (f.name("room", r.room, limits.max_room) && f.array("results", items)) {
      r.results.resize(items.size());
      auto item = items.begin();
      for (std::size_t i = 0; i < items.size() && f.ok(); ++i, ++item) {
        // The item's elements, in order (scalars when the shapes below match).
        const bool array = item->is(MsgpackType::array);
        const MsgpackNode* a0 = &*item + 1;
        const MsgpackNode* a1 = array && item->size >= 2 ? a0->next() : nullptr;
        const MsgpackNode* a2 = array && item->size >= 3 ? a1->next() : nullptr;
        ItemResult& result = r.results[i];
        if (array && item->size == 3 && a0->is(MsgpackType::positive_integer) &&
            a1->is(MsgpackType::positive_integer) && a2->is(MsgpackType::boolean)) {
          result.seq = a0->via.u64;
          result.ts_ms = a1->via.u64;
          result.duplicate = a2->via.boolean;
        } else if (array && item->size == 2 && a0->is(MsgpackType::str) && a1->is(MsgpackType::str) &&
                   a1->size <= limits.max_string) {
          result.code = errc_from_name(a0->view());
          if (result.code == errc::ok) result.code = errc::internal;  // an error item is never "ok"
          result.message.assign(a1->view());
        } else {
          f.fail(errc::bad_field, "results[" + std::to_string(i) + "] must be [seq, ts, duplicate] or [code, message]");
        }
      }
    }
    return done(std::move(r));
  }
  if (name == "history") {
    HistoryOk r;
    std::optional<std::uint64_t> first_seq;
    if (read_history_messages(f, r.messages, limits) && f.boolean("more", r.more) && f.opt_u64("first_seq", first_seq))
      r.first_seq = first_seq.value_or(0);
    return done(std::move(r));
  }
  if (name == "last_seq") {
    LastSeqOk r;
    f.name("room", r.room, limits.max_room) && f.u64("seq", r.seq);
    return done(std::move(r));
  }
  if (name == "call") {
    CallOk r;
    f.name("service", r.service, kMaxServiceName) && f.text("body", r.body, limits.max_body);
    return done(std::move(r));
  }
  if (name == "error") return done(read_error_fields(f, limits));
  return make_error(errc::unknown_op, "unknown reply op '" + name + "'");
}

// ---- published messages ----------------------------------------------------------

std::string encode_message(const RoomMessage& m) {
  return message_event(encode_message_map(m.room, m.seq, m.user, m.ts_ms, m.body, m.client_msg_id, m.mentions,
                                          m.entry.plain() ? nullptr : &m.entry));
}

std::string encode_message(std::string_view room, std::uint64_t seq, std::string_view user, std::uint64_t ts_ms,
                           std::string_view body, std::string_view client_msg_id) {
  return message_event(encode_message_map(room, seq, user, ts_ms, body, client_msg_id));
}

std::string message_event(std::string_view map) {
  // A fixmap of the map's fields (six, or seven with mentions) and v, op; v and op; then
  // the map's fields as they are (past its one-byte fixmap header).
  static constexpr char kHeadBytes[] = "\x88\xa1v\x01\xa2op\xa7message";
  static constexpr std::string_view kHead(kHeadBytes, sizeof kHeadBytes - 1);
  std::string event;
  event.reserve(kHead.size() + map.size() - 1);
  event.append(kHead).append(map.substr(1));
  event[0] = static_cast<char>(static_cast<unsigned char>(map[0]) + 2);  // fixmap of 6 or 7: 0x88 or 0x89
  return event;
}

std::string encode_history_reply(std::uint64_t id, std::size_t count, std::string_view maps, bool more,
                                 std::uint64_t first_seq) {
  FrameBuffer buffer(maps.size() + 72);
  Packer pk(buffer);
  pack_header(pk, first_seq != 0 ? 4 : 2, "history", id);
  pk.pack(std::string_view("messages"));
  pk.pack_array(static_cast<std::uint32_t>(count));
  buffer.write(maps.data(), maps.size());
  pack_field(pk, "more", more);
  if (first_seq != 0) {
    pack_field(pk, "truncated", true);
    pack_field(pk, "first_seq", first_seq);
  }
  return std::move(buffer.bytes);
}

Result<RoomMessage> decode_message(std::string_view frame, const Limits& limits) {
  auto handle = unpack_map(frame, limits);
  if (!handle) return handle.error();
  FieldReader f(handle->root());
  auto op = read_envelope(f);
  if (!op) return op.error();
  if (*op != "message") return make_error(errc::unknown_op, "unknown event op '" + *op + "'");
  RoomMessage m;
  if (!read_message_fields(f, m, limits)) return f.error();
  return m;
}

std::string encode_heads(const HeadsEvent& heads) {
  FrameBuffer buffer(64 + heads.rooms.size() * 24);
  Packer pk(buffer);
  pk.pack_map(5);
  pack_field(pk, "v", kProtocolVersion);
  pack_field(pk, "op", std::string_view("heads"));
  pack_field(pk, "node", std::string_view(heads.node));
  pack_field(pk, "n", heads.number);
  pk.pack(std::string_view("rooms"));
  pk.pack_array(static_cast<std::uint32_t>(heads.rooms.size()));
  for (const auto& h : heads.rooms) {
    pk.pack_array(2);
    pk.pack(std::string_view(h.room));
    pk.pack(h.seq);
  }
  return std::move(buffer.bytes);
}

Result<HeadsEvent> decode_heads(std::string_view frame, const Limits& limits) {
  auto handle = unpack_map(frame, limits);
  if (!handle) return handle.error();
  FieldReader f(handle->root());
  auto op = read_envelope(f);
  if (!op) return op.error();
  if (*op != "heads") return make_error(errc::unknown_op, "unknown event op '" + *op + "'");
  HeadsEvent heads;
  MsgpackElements items;
  if (!(f.name("node", heads.node, limits.max_user) && f.u64("n", heads.number) && f.array("rooms", items)))
    return f.error();
  heads.rooms.reserve(items.size());
  for (const auto& item : items) {
    const MsgpackNode* room = item.is(MsgpackType::array) && item.size == 2 ? &item + 1 : nullptr;
    const MsgpackNode* seq = room ? room->next() : nullptr;
    if (!room || !room->is(MsgpackType::str) || room->size == 0 || room->size > limits.max_room ||
        !seq->is(MsgpackType::positive_integer))
      return make_error(errc::bad_field, "rooms[" + std::to_string(heads.rooms.size()) + "] must be [room, seq]");
    heads.rooms.push_back({std::string(room->view()), seq->via.u64});
  }
  return heads;
}

std::string read_topic(std::string_view user) {
  static constexpr std::string_view kPrefix("\0read:", 6);
  std::string topic;
  topic.reserve(kPrefix.size() + user.size() + 1);
  topic.append(kPrefix).append(user).push_back('\0');
  return topic;
}

bool is_read_topic(std::string_view topic) noexcept {
  return topic.size() > 7 && topic.substr(0, 6) == std::string_view("\0read:", 6) && topic.back() == '\0';
}

std::string encode_read_event(const ReadEvent& e) {
  FrameBuffer buffer(64 + e.node.size() + e.room.size() + e.user.size());
  Packer pk(buffer);
  using K = ReadEvent::Kind;
  pk.pack_map(e.kind == K::read ? 6 : e.kind == K::disconnect ? 4 : 5);
  pack_field(pk, "v", kProtocolVersion);
  pack_field(pk, "op", std::string_view(e.kind == K::read     ? "read"
                                        : e.kind == K::kicked ? "kicked"
                                        : e.kind == K::left   ? "left"
                                                              : "disconnect"));
  pack_field(pk, "node", std::string_view(e.node));
  if (e.kind != K::disconnect) pack_field(pk, "room", std::string_view(e.room));
  pack_field(pk, "user", std::string_view(e.user));
  if (e.kind == K::read) pack_field(pk, "seq", e.seq);
  return std::move(buffer.bytes);
}

Result<ReadEvent> decode_read_event(std::string_view frame, const Limits& limits) {
  auto handle = unpack_map(frame, limits);
  if (!handle) return handle.error();
  FieldReader f(handle->root());
  auto op = read_envelope(f);
  if (!op) return op.error();
  ReadEvent e;
  using K = ReadEvent::Kind;
  if (*op == "read") e.kind = K::read;
  else if (*op == "kicked") e.kind = K::kicked;
  else if (*op == "disconnect") e.kind = K::disconnect;
  else if (*op == "left") e.kind = K::left;
  else return make_error(errc::unknown_op, "unknown event op '" + *op + "'");
  if (!(f.name("node", e.node, limits.max_user) && (e.kind == K::disconnect || f.name("room", e.room, limits.max_room)) &&
        f.name("user", e.user, limits.max_user) && (e.kind != K::read || f.u64("seq", e.seq))))
    return f.error();
  return e;
}

std::optional<std::string_view> room_of_topic(std::string_view topic) noexcept {
  if (topic.size() < 2 || topic.back() != '\0' || topic.front() == '\0') return std::nullopt;
  return topic.substr(0, topic.size() - 1);
}

std::string_view notify_level_name(NotifyLevel level) noexcept {
  switch (level) {
    case NotifyLevel::all: return "all";
    case NotifyLevel::mentions: return "mentions";
    case NotifyLevel::none: return "none";
    case NotifyLevel::room_default: break;
  }
  return "default";
}

std::optional<NotifyLevel> notify_level_from_name(std::string_view name) noexcept {
  for (auto l : {NotifyLevel::room_default, NotifyLevel::all, NotifyLevel::mentions, NotifyLevel::none})
    if (notify_level_name(l) == name) return l;
  return std::nullopt;
}

std::string room_topic(const std::string& room) {
  std::string topic = room;
  topic.push_back('\0');
  return topic;
}

}  // namespace switchboard::transport
