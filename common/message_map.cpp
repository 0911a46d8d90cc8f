#include "switchboard/common/message_map.hpp"

#include <msgpack.hpp>

#include "switchboard/common/msgpack_reader.hpp"

namespace switchboard {
namespace {

struct Bytes {
  std::string out;
  void write(const char* data, std::size_t size) { out.append(data, size); }
};

/// How many fields an entry's extra part takes in the map.
std::uint32_t entry_field_count(const EntryFields& e) {
  std::uint32_t n = 0;
  if (e.kind != EntryKind::message) n += e.kind == EntryKind::react ? 4 : 2;
  n += (e.edited_ts != 0) + e.deleted + !e.reactions.empty() + !e.mine.empty();
  n += (e.reply_to != 0) + (e.thread != 0) + (e.replies != 0 ? 3 : 0);
  return n;
}

template <class Packer>
void pack_entry_fields(Packer& pk, const EntryFields& e) {
  if (e.kind != EntryKind::message) {
    pk.pack(std::string_view("kind"));
    pk.pack(entry_kind_name(e.kind));
    pk.pack(std::string_view("target"));
    pk.pack(e.target);
    if (e.kind == EntryKind::react) {
      pk.pack(std::string_view("key"));
      pk.pack(std::string_view(e.key));
      pk.pack(std::string_view("on"));
      pk.pack(e.on);
    }
  }
  if (e.edited_ts != 0) {
    pk.pack(std::string_view("edited_ts"));
    pk.pack(e.edited_ts);
  }
  if (e.deleted) {
    pk.pack(std::string_view("deleted"));
    pk.pack(true);
  }
  if (!e.reactions.empty()) {
    pk.pack(std::string_view("reactions"));
    pk.pack_map(static_cast<std::uint32_t>(e.reactions.size()));
    for (const auto& r : e.reactions) {
      pk.pack(std::string_view(r.key));
      pk.pack(r.count);
    }
  }
  if (!e.mine.empty()) {
    pk.pack(std::string_view("mine"));
    pk.pack_array(static_cast<std::uint32_t>(e.mine.size()));
    for (const auto& k : e.mine) pk.pack(std::string_view(k));
  }
  if (e.reply_to != 0) {
    pk.pack(std::string_view("reply_to"));
    pk.pack(e.reply_to);
  }
  if (e.thread != 0) {
    pk.pack(std::string_view("thread"));
    pk.pack(e.thread);
  }
  if (e.replies != 0) {
    pk.pack(std::string_view("replies"));
    pk.pack(e.replies);
    pk.pack(std::string_view("last_reply"));
    pk.pack(e.last_reply);
    pk.pack(std::string_view("repliers"));
    pk.pack_array(static_cast<std::uint32_t>(e.repliers.size()));
    for (const auto& u : e.repliers) pk.pack(std::string_view(u));
  }
}

}  // namespace

bool EntryReader::read(std::string_view key, const MsgpackNode& v) {
  if (key == "kind") {
    auto k = v.is(MsgpackType::str) ? entry_kind_from_name(v.view()) : std::nullopt;
    if (!k || *k == EntryKind::message) return false;
    e_.kind = *k;
    return mark(1);
  }
  if (key == "target") return v.is(MsgpackType::positive_integer) && (e_.target = v.via.u64, mark(2));
  if (key == "key") return v.is(MsgpackType::str) && (e_.key = v.view(), mark(4));
  if (key == "on") return v.is(MsgpackType::boolean) && (e_.on = v.via.boolean, mark(8));
  if (key == "edited_ts") return v.is(MsgpackType::positive_integer) && (e_.edited_ts = v.via.u64) != 0;
  if (key == "deleted") return v.is(MsgpackType::boolean) && (e_.deleted = v.via.boolean);
  if (key == "reactions") {
    if (!v.is(MsgpackType::map) || v.size == 0) return false;
    const MsgpackNode* r = &v + 1;
    for (std::uint32_t i = 0; i < v.size; ++i, r = r[1].next()) {
      if (!r[0].is(MsgpackType::str) || !r[1].is(MsgpackType::positive_integer)) return false;
      e_.reactions.push_back({std::string(r[0].view()), r[1].via.u64});
    }
    return true;
  }
  auto names = [&](std::vector<std::string>& into, bool may_be_empty) {
    if (!v.is(MsgpackType::array) || (v.size == 0 && !may_be_empty)) return false;
    for (const MsgpackNode& k : v.elements()) {
      if (!k.is(MsgpackType::str)) return false;
      into.emplace_back(k.view());
    }
    return true;
  };
  auto seq = [&](std::uint64_t& into) { return v.is(MsgpackType::positive_integer) && (into = v.via.u64) != 0; };
  if (key == "mine") return names(e_.mine, false);
  if (key == "reply_to") return seq(e_.reply_to);
  if (key == "thread") return seq(e_.thread);
  if (key == "replies") return seq(e_.replies);
  if (key == "last_reply") return seq(e_.last_reply);
  if (key == "repliers") return names(e_.repliers, true);
  return false;
}

bool EntryReader::complete() const noexcept {
  return seen_ == (e_.kind == EntryKind::message ? 0 : e_.kind == EntryKind::react ? 15 : 3);
}

bool EntryReader::is_entry_key(std::string_view key) noexcept {
  for (std::string_view k : {"kind", "target", "key", "on", "edited_ts", "deleted", "reactions", "mine", "reply_to",
                             "thread", "replies", "last_reply", "repliers"})
    if (key == k) return true;
  return false;
}


std::string encode_entry_fields(const EntryFields& entry) {
  Bytes bytes;
  msgpack::packer<Bytes> pk(bytes);
  pk.pack_map(entry_field_count(entry));
  pack_entry_fields(pk, entry);
  return std::move(bytes.out);
}

std::string entry_preview(const EntryFields& entry, std::string_view body) {
  switch (entry.kind) {
    case EntryKind::remove: return "deleted a message";
    case EntryKind::react: return (entry.on ? "reacted " : "took back ") + entry.key;
    case EntryKind::message:
    case EntryKind::edit: break;
  }
  return std::string(body);
}

std::string_view entry_kind_name(EntryKind kind) noexcept {
  switch (kind) {
    case EntryKind::message: return "message";
    case EntryKind::edit: return "edit";
    case EntryKind::remove: return "delete";
    case EntryKind::react: return "react";
  }
  return "message";
}

std::optional<EntryKind> entry_kind_from_name(std::string_view name) noexcept {
  for (auto kind : {EntryKind::message, EntryKind::edit, EntryKind::remove, EntryKind::react})
    if (entry_kind_name(kind) == name) return kind;
  return std::nullopt;
}

std::string encode_message_map(std::string_view room, std::uint64_t seq, std::string_view user, std::uint64_t ts_ms,
                               std::string_view body, std::string_view client_msg_id,
                               std::span<const std::string> mentions, const EntryFields* entry) {
  Bytes bytes;
  std::size_t mention_bytes = 0;
  for (const auto& name : mentions) mention_bytes += name.size() + 5;
  const std::uint32_t extra = entry != nullptr ? entry_field_count(*entry) : 0;
  std::size_t extra_bytes = 0;
  if (extra != 0) {
    extra_bytes = 64 + entry->key.size();
    for (const auto& r : entry->reactions) extra_bytes += r.key.size() + 10;
    for (const auto& k : entry->mine) extra_bytes += k.size() + 2;
    for (const auto& u : entry->repliers) extra_bytes += u.size() + 2;
  }
  bytes.out.reserve(body.size() + room.size() + user.size() + client_msg_id.size() + mention_bytes + extra_bytes + 64);
  msgpack::packer<Bytes> pk(bytes);
  pk.pack_map((mentions.empty() ? 6 : 7) + extra);
  pk.pack(std::string_view("room"));
  pk.pack(room);
  pk.pack(std::string_view("seq"));
  pk.pack(seq);
  pk.pack(std::string_view("user"));
  pk.pack(user);
  pk.pack(std::string_view("ts"));
  pk.pack(ts_ms);
  pk.pack(std::string_view("body"));
  pk.pack(body);
  pk.pack(std::string_view("cmid"));
  pk.pack(client_msg_id);
  if (!mentions.empty()) {
    pk.pack(std::string_view("mentions"));
    pk.pack_array(static_cast<std::uint32_t>(mentions.size()));
    for (const auto& name : mentions) pk.pack(std::string_view(name));
  }
  if (extra != 0) pack_entry_fields(pk, *entry);
  return std::move(bytes.out);
}

std::optional<EntryFields> read_entry_fields(std::string_view bytes) {
  const msgpack::unpack_limit limit(bytes.size(), bytes.size(), bytes.size(), 0, 0, /*depth=*/2);
  MsgpackReader reader;
  if (!reader.read(bytes, limit)) return std::nullopt;
  const MsgpackNode& o = reader.root();
  if (reader.consumed() != bytes.size() || !o.is(MsgpackType::map)) return std::nullopt;
  EntryFields e;
  EntryReader entry(e);
  const MsgpackNode* kv = &o + 1;
  for (std::uint32_t i = 0; i < o.size; ++i, kv = kv[1].next())
    if (!kv[0].is(MsgpackType::str) || !entry.read(kv[0].view(), kv[1])) return std::nullopt;
  if (!entry.complete()) return std::nullopt;
  return e;
}

std::optional<MessageMapView> read_message_map(std::string_view bytes) {
  const msgpack::unpack_limit limit(/*array=*/bytes.size(), /*map=*/bytes.size(), /*str=*/bytes.size(), /*bin=*/0,
                                    /*ext=*/0, /*depth=*/2);
  MsgpackReader reader;
  if (!reader.read(bytes, limit)) return std::nullopt;  // malformed msgpack, past the limits
  const MsgpackNode& o = reader.root();
  if (reader.consumed() != bytes.size() || !o.is(MsgpackType::map) || o.size < 6) return std::nullopt;
  MessageMapView m;
  int seen = 0;
  auto names = [&](const MsgpackNode& v) {
    if (!v.is(MsgpackType::array) || v.size == 0) return false;
    m.mentions.reserve(v.size);
    for (const MsgpackNode& name : v.elements()) {
      if (!name.is(MsgpackType::str)) return false;
      m.mentions.push_back(name.view());
    }
    seen |= 64;
    return true;
  };
  EntryReader entry(m.entry);
  const MsgpackNode* kv = &o + 1;
  for (std::uint32_t i = 0; i < o.size; ++i, kv = kv[1].next()) {
    const MsgpackNode& k = kv[0];
    const MsgpackNode& v = kv[1];
    if (!k.is(MsgpackType::str)) return std::nullopt;
    const std::string_view key = k.view();
    auto text = [&](std::string_view& into, int bit) {
      if (!v.is(MsgpackType::str)) return false;
      into = v.view();
      seen |= bit;
      return true;
    };
    auto number = [&](std::uint64_t& into, int bit) {
      if (!v.is(MsgpackType::positive_integer)) return false;
      into = v.via.u64;
      seen |= bit;
      return true;
    };
    const bool ok = key == "room"   ? text(m.room, 1)
                    : key == "seq"  ? number(m.seq, 2)
                    : key == "user" ? text(m.user, 4)
                    : key == "ts"   ? number(m.ts_ms, 8)
                    : key == "body" ? text(m.body, 16)
                    : key == "cmid" ? text(m.client_msg_id, 32)
                    : key == "mentions" ? names(v)
                                        : entry.read(key, v);
    if (!ok) return std::nullopt;
  }
  if ((seen & 63) != 63 || !entry.complete()) return std::nullopt;
  return m;
}

}  // namespace switchboard
