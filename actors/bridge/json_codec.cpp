#include "switchboard/actors/bridge/json_codec.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <limits>
#include <vector>

#include <nlohmann/json.hpp>

#include "switchboard/common/overloaded.hpp"
#include "switchboard/common/utf8.hpp"
#include "switchboard/transport/codec.hpp"

namespace switchboard::actors::bridge {
namespace {

using json = nlohmann::json;

void put_be(std::string& out, std::uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

void put_uint(std::string& out, std::uint64_t v) {
  if (v < 0x80) out.push_back(static_cast<char>(v));
  else if (v <= 0xFF) out.push_back('\xcc'), put_be(out, v, 1);
  else if (v <= 0xFFFF) out.push_back('\xcd'), put_be(out, v, 2);
  else if (v <= 0xFFFFFFFFu) out.push_back('\xce'), put_be(out, v, 4);
  else out.push_back('\xcf'), put_be(out, v, 8);
}

void put_int(std::string& out, std::int64_t v) {
  if (v >= 0) return put_uint(out, static_cast<std::uint64_t>(v));
  const auto bits = static_cast<std::uint64_t>(v);
  if (v >= -32) out.push_back(static_cast<char>(bits & 0xFF));
  else if (v >= -128) out.push_back('\xd0'), put_be(out, bits, 1);
  else if (v >= -32768) out.push_back('\xd1'), put_be(out, bits, 2);
  else if (v >= -2147483648LL) out.push_back('\xd2'), put_be(out, bits, 4);
  else out.push_back('\xd3'), put_be(out, bits, 8);
}

void put_str(std::string& out, std::string_view s) {
  const std::size_t n = s.size();
  if (n < 32) out.push_back(static_cast<char>(0xa0 | n));
  else if (n <= 0xFF) out.push_back('\xd9'), put_be(out, n, 1);
  else if (n <= 0xFFFF) out.push_back('\xda'), put_be(out, n, 2);
  else out.push_back('\xdb'), put_be(out, n, 4);
  out.append(s);
}

/// nlohmann's SAX events, written out as msgpack. Containers get 32-bit headers whose
/// counts are filled in when they close (JSON does not say how many elements follow).
class JsonToMsgpack {
 public:
  JsonToMsgpack(std::size_t max_depth, std::string& out) : max_depth_(max_depth), out_(out) {
    open_.clear();
    top_.clear();
  }

  bool too_deep() const noexcept { return too_deep_; }

  // nlohmann::json_sax<json>
  bool null() { return value() && (out_.push_back('\xc0'), true); }
  bool boolean(bool v) { return value() && (out_.push_back(v ? '\xc3' : '\xc2'), true); }
  bool number_integer(json::number_integer_t v) { return value() && (put_int(out_, v), true); }
  bool number_unsigned(json::number_unsigned_t v) { return value() && (put_uint(out_, v), true); }
  bool number_float(json::number_float_t v, const json::string_t&) {
    if (!value()) return false;
    std::uint64_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    out_.push_back('\xcb');
    put_be(out_, bits, 8);
    return true;
  }
  bool string(json::string_t& v) { return value() && (put_str(out_, v), true); }
  bool binary(json::binary_t&) { return false; }  // JSON text has none
  bool start_object(std::size_t) { return start('\xdf', true); }
  bool start_array(std::size_t) { return start('\xdd', false); }
  bool end_object() { return end(); }
  bool end_array() { return end(); }
  bool key(json::string_t& k) {
    if (!inside_limit()) return false;
    ++open_.back().count;
    if (open_.size() == 1) top_.push_back({out_.size(), k.size()});
    put_str(out_, k);
    return true;
  }
  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& e) {
    fault_at_ = position;
    // "[json.exception.parse_error.101] parse error at line 1, column 5: syntax error ..."
    std::string_view what = e.what();
    if (auto colon = what.find(": "); colon != std::string_view::npos) what.remove_prefix(colon + 2);
    fault_ = what;
    return false;
  }
  /// Where the text stopped being JSON, and why (a parse error), or 0.
  std::size_t fault_at() const noexcept { return fault_at_; }
  const std::string& fault() const noexcept { return fault_; }

 private:
  struct Open {
    std::size_t header;  ///< offset of the container's header in out_
    std::uint32_t count;
  };
  /// A top-level key: where its entry starts (the key's str header) and the key's length.
  struct TopKey {
    std::size_t at;
    std::size_t size;
  };

  /// A key, value or container start at the current depth: within the limit? As the
  /// bridge's nlohmann parser callback measured it: the number of containers open.
  bool inside_limit() {
    if (open_.size() > max_depth_) too_deep_ = true;
    return !too_deep_;
  }
  bool value() {
    if (!inside_limit()) return false;
    if (!open_.empty() && out_[open_.back().header] == '\xdd') ++open_.back().count;  // an array element
    return true;
  }
  bool start(char header, bool) {
    if (!value()) return false;
    open_.push_back({out_.size(), 0});
    out_.push_back(header);
    out_.append(4, '\0');
    return true;
  }
  bool end() {
    const Open o = open_.back();
    open_.pop_back();
    for (int i = 0; i < 4; ++i) out_[o.header + 1 + i] = static_cast<char>((o.count >> (8 * (3 - i))) & 0xFF);
    if (open_.empty() && out_[o.header] == '\xdf') keep_last_of_each_key(o.header);
    return true;
  }

  /// A JSON object reader keeps the last value of a key given twice; so does this one, at
  /// the top level (the only one a request is read from).
  void keep_last_of_each_key(std::size_t header) {
    if (top_.size() < 2) return;
    auto key_of = [&](const TopKey& k) {
      // The key's str header is 1, 2, 3 or 5 bytes, by its length.
      const std::size_t head = k.size < 32 ? 1 : k.size <= 0xFF ? 2 : k.size <= 0xFFFF ? 3 : 5;
      return std::string_view(out_).substr(k.at + head, k.size);
    };
    order_.resize(top_.size());
    for (std::size_t i = 0; i < order_.size(); ++i) order_[i] = i;
    std::stable_sort(order_.begin(), order_.end(),
                     [&](std::size_t a, std::size_t b) { return key_of(top_[a]) < key_of(top_[b]); });
    keep_.assign(top_.size(), true);
    bool repeated = false;
    for (std::size_t i = 1; i < order_.size(); ++i)
      if (key_of(top_[order_[i - 1]]) == key_of(top_[order_[i]])) {
        keep_[order_[i - 1]] = false;  // stable: the later one comes after
        repeated = true;
      }
    if (!repeated) return;
    std::string kept;
    kept.reserve(out_.size());
    kept.append(out_, 0, header);
    const auto count = static_cast<std::uint32_t>(std::count(keep_.begin(), keep_.end(), true));
    kept.push_back('\xdf');
    put_be(kept, count, 4);
    for (std::size_t i = 0; i < top_.size(); ++i) {
      const std::size_t end = i + 1 < top_.size() ? top_[i + 1].at : out_.size();
      if (keep_[i]) kept.append(out_, top_[i].at, end - top_[i].at);
    }
    out_.swap(kept);
  }

  std::size_t max_depth_;
  std::string& out_;
  bool too_deep_ = false;
  std::size_t fault_at_ = 0;
  std::string fault_;
  // Scratch kept by the thread: reading a frame allocates none of it once warm.
  static thread_local std::vector<Open> open_;
  static thread_local std::vector<TopKey> top_;
  static thread_local std::vector<std::size_t> order_;
  static thread_local std::vector<bool> keep_;
};
thread_local std::vector<JsonToMsgpack::Open> JsonToMsgpack::open_;
thread_local std::vector<JsonToMsgpack::TopKey> JsonToMsgpack::top_;
thread_local std::vector<std::size_t> JsonToMsgpack::order_;
thread_local std::vector<bool> JsonToMsgpack::keep_;

constexpr char kHex[] = "0123456789abcdef";

/// Appends `s` JSON-escaped as nlohmann::json::dump does (ensure_ascii off).
void escape_valid(std::string& out, std::string_view s) {
  std::size_t plain = 0;  // start of the run copied as it is
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(s, plain, i - plain);
    plain = i + 1;
    switch (c) {
      case '"': out.append("\\\""); break;
      case '\\': out.append("\\\\"); break;
      case '\b': out.append("\\b"); break;
      case '\f': out.append("\\f"); break;
      case '\n': out.append("\\n"); break;
      case '\r': out.append("\\r"); break;
      case '\t': out.append("\\t"); break;
      default: {
        const char u[] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 15]};
        out.append(u, sizeof u);
      }
    }
  }
  out.append(s, plain, s.size() - plain);
}

/// The same for text that is not valid UTF-8: each maximal bad subsequence (a lead
/// byte and the continuation bytes that may follow it, cut where one may not) becomes
/// U+FFFD, as nlohmann's error_handler_t::replace does.
void escape_replacing(std::string& out, std::string_view s) {
  static constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    const unsigned char c = *p;
    int extra = -1;                    // continuation bytes the lead byte asks for
    unsigned char low = 0x80, high = 0xBF;  // the range of the first of them
    if (c < 0x80) extra = 0;
    else if (c >= 0xC2 && c <= 0xDF) extra = 1;
    else if (c >= 0xE0 && c <= 0xEF) extra = 2, low = c == 0xE0 ? 0xA0 : 0x80, high = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4) extra = 3, low = c == 0xF0 ? 0x90 : 0x80, high = c == 0xF4 ? 0x8F : 0xBF;
    int have = 0;  // continuation bytes that follow, each in its range
    while (extra > 0 && have < extra && p + 1 + have < end) {
      const unsigned char next = p[1 + have];
      if (have == 0 ? (next < low || next > high) : (next & 0xC0) != 0x80) break;
      ++have;
    }
    if (extra >= 0 && have == extra)
      escape_valid(out, std::string_view(reinterpret_cast<const char*>(p), static_cast<std::size_t>(1 + have)));
    else
      out.append(kReplacement);
    p += 1 + have;
  }
}

}  // namespace

Result<void> json_to_msgpack(std::string_view text, std::size_t max_depth, std::string& out) {
  out.clear();
  JsonToMsgpack sax(max_depth, out);
  const bool ok = json::sax_parse(text.begin(), text.end(), &sax, json::input_format_t::json, true, false);
  if (sax.too_deep()) return make_error(errc::too_large, "nesting deeper than " + std::to_string(max_depth));
  if (!ok && sax.fault_at() != 0)
    return make_error(errc::bad_frame, "not one JSON value: at byte " + std::to_string(sax.fault_at()) + ": " +
                                           sax.fault());
  if (!ok) return make_error(errc::bad_frame, "not one JSON value");
  return {};
}

Result<MsgpackReader> json_object(std::string_view text, std::size_t max_depth, std::string& scratch) {
  if (auto json = json_to_msgpack(text, max_depth, scratch); !json) return json.error();
  // Checked already: the text's depth, and its size (the caller's limit on the text).
  transport::Limits read;
  read.max_frame = read.max_string = read.max_array = read.max_map = std::numeric_limits<std::uint32_t>::max();
  read.max_depth = max_depth + 1;  // an empty container may sit at max_depth + 1
  auto map = transport::unpack_value(scratch, read);
  if (!map || !map->root().is(MsgpackType::map)) return make_error(errc::bad_frame, "not one JSON object");
  return map;
}

// ---- JsonWriter --------------------------------------------------------------------

void JsonWriter::separate() {
  if (comma_) out_.push_back(',');
  comma_ = true;
}

JsonWriter& JsonWriter::begin_object() {
  separate();
  out_.push_back('{');
  comma_ = false;
  return *this;
}
JsonWriter& JsonWriter::end_object() {
  out_.push_back('}');
  comma_ = true;
  return *this;
}
JsonWriter& JsonWriter::begin_array() {
  separate();
  out_.push_back('[');
  comma_ = false;
  return *this;
}
JsonWriter& JsonWriter::end_array() {
  out_.push_back(']');
  comma_ = true;
  return *this;
}
JsonWriter& JsonWriter::members(std::string_view object) {
  if (object.size() <= 2) return *this;  // "{}"
  separate();
  out_.append(object.substr(1, object.size() - 2));
  return *this;
}

JsonWriter& JsonWriter::key(std::string_view k) {
  str(k);
  out_.push_back(':');
  comma_ = false;
  return *this;
}
JsonWriter& JsonWriter::str(std::string_view value) {
  separate();
  out_.push_back('"');
  if (valid_utf8(value)) escape_valid(out_, value);
  else escape_replacing(out_, value);
  out_.push_back('"');
  return *this;
}
JsonWriter& JsonWriter::u64(std::uint64_t value) {
  separate();
  char digits[20];
  const auto end = std::to_chars(digits, digits + sizeof digits, value).ptr;
  out_.append(digits, static_cast<std::size_t>(end - digits));
  return *this;
}
JsonWriter& JsonWriter::boolean(bool value) {
  separate();
  out_.append(value ? "true" : "false");
  return *this;
}

// ---- typed replies and events ---------------------------------------------------------

namespace {

JsonWriter& header(JsonWriter& w, std::string_view op, std::uint64_t id, Envelope envelope = Envelope::full) {
  if (envelope == Envelope::op_only) return w.begin_object().str("op", op);
  return w.begin_object().u64("v", transport::kProtocolVersion).str("op", op).u64("id", id);
}

void strings(JsonWriter& w, std::string_view key, const std::vector<std::string>& items) {
  w.key(key).begin_array();
  for (const auto& s : items) w.str(s);
  w.end_array();
}

}  // namespace

void write_entry_fields(JsonWriter& w, const EntryFields& e) {
  if (e.kind != EntryKind::message) {
    w.str("kind", entry_kind_name(e.kind)).u64("target", e.target);
    if (e.kind == EntryKind::react) w.str("key", e.key).boolean("on", e.on);
  }
  if (e.edited_ts != 0) w.u64("edited_ts", e.edited_ts);
  if (e.deleted) w.boolean("deleted", true);
  if (!e.reactions.empty()) {
    w.key("reactions").begin_object();
    for (const auto& r : e.reactions) w.u64(r.key, r.count);
    w.end_object();
  }
  if (!e.mine.empty()) strings(w, "mine", e.mine);
  if (e.reply_to != 0) w.u64("reply_to", e.reply_to);
  if (e.thread != 0) w.u64("thread", e.thread);
  if (e.replies != 0) {
    w.u64("replies", e.replies).u64("last_reply", e.last_reply);
    strings(w, "repliers", e.repliers);
  }
}

namespace {

void message_fields(JsonWriter& w, const transport::RoomMessage& m) {
  w.str("room", m.room).u64("seq", m.seq).str("user", m.user).u64("ts", m.ts_ms).str("body", m.body).str(
      "cmid", m.client_msg_id);
  if (!m.mentions.empty()) strings(w, "mentions", m.mentions);
  if (!m.entry.plain()) write_entry_fields(w, m.entry);
}

}  // namespace

std::string message_object_json(const transport::RoomMessage& m) {
  JsonWriter w(160 + m.body.size());
  w.begin_object();
  message_fields(w, m);
  return w.end_object().take();
}

namespace {

void error_fields(JsonWriter& w, const transport::ErrorReply& e) {
  w.str("code", errc_name(e.code)).str("message", e.message);
}

std::size_t history_bytes(const transport::HistoryOk& h) {
  std::size_t n = 64;
  for (const auto& m : h.messages) n += 96 + m.room.size() + m.user.size() + m.body.size() + m.client_msg_id.size();
  return n;
}

}  // namespace

std::string reply_json(const transport::Reply& reply, Envelope envelope) {
  const auto* history = std::get_if<transport::HistoryOk>(&reply.body);
  JsonWriter w(history ? history_bytes(*history) : 128);
  header(w, transport::op_name(reply.body), reply.id, envelope);
  std::visit(Overloaded{
                 [&](const transport::HelloOk& r) {
                   w.u64("protocol", r.protocol).str("node", r.node);
                   strings(w, "pub", r.pub);
                   w.u64("max_body", r.max_body);
                   strings(w, "presence", r.presence);
                   strings(w, "presence_pub", r.presence_pub);
                   w.u64("max_batch", r.max_batch);
                 },
                 [&](const transport::PingOk&) {},
                 [&](const transport::CreateRoomOk& r) { w.boolean("created", r.created); },
                 [&](const transport::JoinOk& r) { w.boolean("joined", r.joined); },
                 [&](const transport::LeaveOk& r) { w.boolean("left", r.left); },
                 [&](const transport::RoomsOk& r) {
                   strings(w, "rooms", r.rooms);
                   if (!r.missing.empty()) strings(w, "missing", r.missing);
                   if (!r.missing_shards.empty()) strings(w, "missing_shards", r.missing_shards);
                   if (r.more) w.boolean("more", true);
                   if (r.summaries.empty()) return;
                   w.key("summaries").begin_array();
                   for (const auto& m : r.summaries) {
                     w.begin_object()
                         .str("room", m.room)
                         .str("role", role_name(m.role))
                         .u64("last_seq", m.last_seq)
                         .u64("last_ts", m.last_ts_ms)
                         .str("last_user", m.last_user)
                         .str("preview", m.preview)
                         .u64("read_seq", m.read_seq)
                         .u64("unread", m.unread)
                         .u64("mentions", m.mentions);
                     if (m.private_room) w.boolean("private", true);
                     w.end_object();
                   }
                   w.end_array();
                 },
                 [&](const transport::MarkReadOk& r) {
                   w.str("room", r.room).u64("seq", r.seq).u64("unread", r.unread);
                 },
                 [&](const transport::SetReceiptsOk& r) { w.boolean("changed", r.changed); },
                 [&](const transport::KickOk& r) { w.boolean("removed", r.removed); },
                 [&](const transport::DisconnectOk&) {},
                 [&](const transport::SetNotifyOk& r) {
                   w.str("room", r.room)
                       .str("level", transport::notify_level_name(r.level))
                       .str("effective", transport::notify_level_name(r.effective));
                 },
                 [&](const transport::ReadMarkersOk& r) {
                   w.str("room", r.room).key("markers").begin_array();
                   for (const auto& m : r.markers) w.begin_object().str("user", m.user).u64("seq", m.seq).end_object();
                   w.end_array();
                 },
                 [&](const transport::MembersOk& r) {
                   strings(w, "members", r.members);
                   if (r.roles.size() != r.members.size()) return;  // not known
                   w.key("roles").begin_array();
                   for (Role role : r.roles) w.str(role_name(role));
                   w.end_array();
                 },
                 [&](const transport::PublishOk& r) {
                   w.str("room", r.room).u64("seq", r.seq).u64("ts", r.ts_ms).boolean("duplicate", r.duplicate);
                 },
                 [&](const transport::PublishBatchOk& r) {
                   w.str("room", r.room).key("results").begin_array();
                   for (const auto& item : r.results) {
                     w.begin_array();
                     if (item.code == errc::ok) w.u64(item.seq).u64(item.ts_ms).boolean(item.duplicate);
                     else w.str(errc_name(item.code)).str(item.message);
                     w.end_array();
                   }
                   w.end_array();
                 },
                 [&](const transport::HistoryOk& r) {
                   w.key("messages").begin_array();
                   for (const auto& m : r.messages) {
                     w.begin_object();
                     message_fields(w, m);
                     w.end_object();
                   }
                   w.end_array().boolean("more", r.more);
                   if (r.first_seq != 0) w.boolean("truncated", true).u64("first_seq", r.first_seq);
                 },
                 [&](const transport::LastSeqOk& r) { w.str("room", r.room).u64("seq", r.seq); },
                 [&](const transport::CallOk& r) { w.str("service", r.service).str("body", r.body); },
                 [&](const transport::AddMemberOk& r) { w.boolean("added", r.added); },
                 [&](const transport::RemoveMemberOk& r) { w.boolean("removed", r.removed); },
                 [&](const transport::BanOk& r) { w.boolean("banned", r.banned); },
                 [&](const transport::UnbanOk& r) { w.boolean("unbanned", r.unbanned); },
                 [&](const transport::SetRoleOk& r) { w.boolean("changed", r.changed); },
                 [&](const transport::DeleteRoomOk& r) { w.boolean("deleted", r.deleted); },
                 [&](const transport::ShardsOk& r) {
                   w.key("shards").begin_array();
                   for (const auto& s : r.shards) {
                     w.begin_object()
                         .str("name", s.name)
                         .str("primary", s.primary)
                         .str("ack", s.ack)
                         .u64("term", s.term)
                         .u64("lsn", s.lsn)
                         .boolean("primary_up", s.primary_up)
                         .key("replicas")
                         .begin_array();
                     for (const auto& rep : s.replicas)
                       w.begin_object().str("node", rep.node).u64("lsn", rep.lsn).boolean("up", rep.up).end_object();
                     w.end_array().end_object();
                   }
                   w.end_array();
                   if (!r.missing.empty()) strings(w, "missing", r.missing);
                 },
                 [&](const transport::SetRetentionOk& r) {
                   w.str("room", r.room).u64("max_age_s", r.max_age_s).u64("max_messages", r.max_messages);
                   w.boolean("legal_hold", r.legal_hold).u64("applied_max_age_s", r.applied_max_age_s);
                   w.u64("applied_max_messages", r.applied_max_messages).u64("first_seq", r.first_seq);
                 },
                 [&](const transport::TrimHistoryOk& r) {  // not on the bridge: never sent
                   w.str("room", r.room).u64("first_seq", r.first_seq);
                 },
                 [&](const transport::ImportBatchOk& r) {  // the bridge does not offer `import_batch`: never sent
                   w.str("room", r.room).u64("first_seq", r.first_seq).u64("last_seq", r.last_seq);
                 },
                 [&](const transport::BackupOk& r) {  // the bridge does not offer `backup`: never sent
                   w.u64("backup", r.backup).u64("offset", r.offset).boolean("done", r.done);
                 },
                 [&](const transport::ErrorReply& r) { error_fields(w, r); },
             },
             reply.body);
  return w.end_object().take();
}

std::string presence_reply_json(const transport::PresenceReply& reply, Envelope envelope) {
  JsonWriter w;
  header(w, transport::op_name(reply.body), reply.id, envelope);
  std::visit(Overloaded{
                 [&](const transport::SessionOpenOk& r) {
                   w.str("session", r.session).u64("heartbeat_ms", r.heartbeat_ms).u64("ttl_ms", r.ttl_ms);
                 },
                 [&](const transport::WhoOk& r) {
                   w.str("room", r.room).u64("version", r.version).key("users").begin_array();
                   for (const auto& u : r.users)
                     w.begin_object()
                         .str("user", u.user)
                         .str("status", transport::availability_name(u.status))
                         .str("text", u.text)
                         .end_object();
                   w.end_array();
                   strings(w, "typing", r.typing);
                 },
                 [&](const transport::UserStatusOk& r) {
                   w.str("user", r.user)
                       .boolean("online", r.online)
                       .str("status", transport::availability_name(r.status))
                       .str("text", r.text);
                   if (r.last_seen) w.u64("last_seen", *r.last_seen);
                 },
                 [&](const transport::ErrorReply& r) { error_fields(w, r); },
                 [&](const auto&) {},  // the empty ones
             },
             reply.body);
  return w.end_object().take();
}

std::string message_json(const transport::RoomMessage& m) {
  JsonWriter w(96 + m.room.size() + m.user.size() + m.body.size() + m.client_msg_id.size());
  w.begin_object().u64("v", transport::kProtocolVersion).str("op", "message");
  message_fields(w, m);
  return w.end_object().take();
}

std::string presence_event_json(const transport::PresenceEvent& e) {
  JsonWriter w;
  return w.begin_object()
      .u64("v", transport::kProtocolVersion)
      .str("op", "presence")
      .str("room", e.room)
      .u64("version", e.version)
      .str("kind", transport::event_kind_name(e.kind))
      .str("user", e.user)
      .str("status", transport::availability_name(e.status))
      .str("text", e.text)
      .u64("ttl_ms", e.ttl_ms)
      .end_object()
      .take();
}

// ---- MapWriter ------------------------------------------------------------------------

MapWriter::MapWriter(bool binary, std::uint32_t fields) : binary_(binary), json_(binary ? 0 : 128) {
  if (binary) {
    msgpack_.reserve(96);
    if (fields < 16) msgpack_.push_back(static_cast<char>(0x80 | fields));
    else msgpack_.push_back('\xde'), put_be(msgpack_, fields, 2);
  } else {
    json_.begin_object();
  }
}

MapWriter& MapWriter::str(std::string_view key, std::string_view value) {
  if (!binary_) return json_.str(key, value), *this;
  put_str(msgpack_, key);
  put_str(msgpack_, value);
  return *this;
}

MapWriter& MapWriter::u64(std::string_view key, std::uint64_t value) {
  if (!binary_) return json_.u64(key, value), *this;
  put_str(msgpack_, key);
  put_uint(msgpack_, value);
  return *this;
}

MapWriter& MapWriter::boolean(std::string_view key, bool value) {
  if (!binary_) return json_.boolean(key, value), *this;
  put_str(msgpack_, key);
  msgpack_.push_back(value ? '\xc3' : '\xc2');
  return *this;
}

std::string MapWriter::take() { return binary_ ? std::move(msgpack_) : json_.end_object().take(); }

std::string error_frame(bool binary, std::uint64_t id, std::string_view code, std::string_view message,
                        std::uint64_t retry_after_ms) {
  MapWriter w(binary, retry_after_ms ? 6 : 5);
  w.u64("v", transport::kProtocolVersion).str("op", "error").u64("id", id).str("code", code).str("message", message);
  if (retry_after_ms) w.u64("retry_after_ms", retry_after_ms);
  return w.take();
}

}  // namespace switchboard::actors::bridge
