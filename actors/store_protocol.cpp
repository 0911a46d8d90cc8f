#include "switchboard/actors/store_protocol.hpp"

#include <array>
#include <cstring>
#include <memory>

#include "switchboard/transport/codec.hpp"

namespace switchboard::actors::store {
namespace {

using transport::FieldReader;
using transport::Packer;
using transport::pack_bin;
using transport::pack_bin_field;
using transport::pack_field;

// Internal frames come from this node's own actors; the limits only guard against a
// bug turning into an allocation storm.
transport::Limits internal_limits() {
  transport::Limits l;
  l.max_frame = std::size_t{1} << 32;
  l.max_string = std::size_t{1} << 30;
  l.max_body = l.max_string;
  l.max_array = std::size_t{1} << 24;
  l.max_map = 64;
  l.max_depth = 8;
  return l;
}

enum RecordKind : std::uint8_t {
  create_room = 0, add_member = 1, remove_member = 2, message = 3, delete_room = 4, log_entry = 5, trim_log = 6,
  shard_vote = 7, truncate_log = 8, reconcile_message = 9, mark_read = 10, set_receipts = 11,
  set_retention = 12, trim_room = 13
};

// A TargetState, as an array: [found, user, ts_ms, kind, deleted, reacted, thread, [key, count, ...]].
void pack_target(Packer& pk, const persistence::TargetState& t) {
  pk.pack_array(8);
  pk.pack(t.found);
  pk.pack(t.user);
  pk.pack(t.ts_ms);
  pk.pack(static_cast<std::uint8_t>(t.kind));
  pk.pack(t.deleted);
  pk.pack(t.reacted);
  pk.pack(t.thread);
  pk.pack_array(static_cast<std::uint32_t>(t.reactions.size() * 2));
  for (const auto& r : t.reactions) {
    pk.pack(r.key);
    pk.pack(r.count);
  }
}

std::optional<persistence::TargetState> read_target(const MsgpackNode* o) {
  if (o == nullptr || !o->is(MsgpackType::array) || o->size != 8) return std::nullopt;
  persistence::TargetState t;
  try {
    auto f = o->elements().begin();
    t.found = msgpack_as<bool>(*f++);
    t.user = msgpack_as<std::string>(*f++);
    t.ts_ms = msgpack_as<std::uint64_t>(*f++);
    const auto kind = msgpack_as<std::uint8_t>(*f++);
    if (kind > static_cast<std::uint8_t>(EntryKind::react)) return std::nullopt;
    t.kind = static_cast<EntryKind>(kind);
    t.deleted = msgpack_as<bool>(*f++);
    t.reacted = msgpack_as<bool>(*f++);
    t.thread = msgpack_as<std::uint64_t>(*f++);
    const MsgpackNode& reactions = *f;
    if (!reactions.is(MsgpackType::array) || reactions.size % 2 != 0) return std::nullopt;
    for (auto r = reactions.elements().begin(); r != reactions.elements().end();) {
      auto key = msgpack_as<std::string>(*r++);
      t.reactions.push_back({std::move(key), msgpack_as<std::uint64_t>(*r++)});
    }
  } catch (const msgpack::type_error&) {
    return std::nullopt;
  }
  return t;
}

void pack_record(Packer& pk, const persistence::Record& record) {
  std::visit(
      [&](const auto& r) {
        using T = std::decay_t<decltype(r)>;
        if constexpr (std::is_same_v<T, persistence::CreateRoom>) {
          pk.pack_array(5);
          pk.pack(std::uint8_t{create_room});
          pk.pack(r.room);
          pk.pack(r.creator);
          pk.pack(r.ts_ms);
          pk.pack(r.private_room);
        } else if constexpr (std::is_same_v<T, persistence::AddMember>) {
          pk.pack_array(4);
          pk.pack(std::uint8_t{add_member});
          pk.pack(r.room);
          pk.pack(r.user);
          pk.pack(static_cast<std::uint8_t>(r.role));
        } else if constexpr (std::is_same_v<T, persistence::RemoveMember>) {
          pk.pack_array(r.ban ? 5 : 4);  // ban only when set: nodes before bans read the rest
          pk.pack(std::uint8_t{remove_member});
          pk.pack(r.room);
          pk.pack(r.user);
          pk.pack(r.remember);
          if (r.ban) pk.pack(true);
        } else if constexpr (std::is_same_v<T, persistence::DeleteRoom>) {
          pk.pack_array(3);
          pk.pack(std::uint8_t{delete_room});
          pk.pack(r.room);
          pk.pack_nil();
        } else if constexpr (std::is_same_v<T, persistence::LogEntry>) {
          pk.pack_array(5);
          pk.pack(std::uint8_t{log_entry});
          pk.pack(r.shard);
          pk.pack(r.term);
          pk.pack(r.lsn);
          pack_bin(pk, r.body);
        } else if constexpr (std::is_same_v<T, persistence::TrimLog>) {
          pk.pack_array(3);
          pk.pack(std::uint8_t{trim_log});
          pk.pack(r.shard);
          pk.pack(r.lsn);
        } else if constexpr (std::is_same_v<T, persistence::ShardVote>) {
          pk.pack_array(6);
          pk.pack(std::uint8_t{shard_vote});
          pk.pack(r.shard);
          pk.pack(r.term);
          pk.pack(r.voted_for);
          pk.pack(r.primary);
          pk.pack(r.learner_until);
        } else if constexpr (std::is_same_v<T, persistence::TruncateLog>) {
          pk.pack_array(3);
          pk.pack(std::uint8_t{truncate_log});
          pk.pack(r.shard);
          pk.pack(r.lsn);
        } else if constexpr (std::is_same_v<T, persistence::MarkRead>) {
          pk.pack_array(4);
          pk.pack(std::uint8_t{mark_read});
          pk.pack(r.room);
          pk.pack(r.user);
          pk.pack(r.seq);
        } else if constexpr (std::is_same_v<T, persistence::SetReceipts>) {
          pk.pack_array(3);
          pk.pack(std::uint8_t{set_receipts});
          pk.pack(r.room);
          pk.pack(r.receipts);
        } else if constexpr (std::is_same_v<T, persistence::SetRetention>) {
          pk.pack_array(5);
          pk.pack(std::uint8_t{set_retention});
          pk.pack(r.room);
          pk.pack(r.retention.max_age_ms);
          pk.pack(r.retention.max_messages);
          pk.pack(r.retention.legal_hold);
        } else if constexpr (std::is_same_v<T, persistence::TrimRoom>) {
          pk.pack_array(3);
          pk.pack(std::uint8_t{trim_room});
          pk.pack(r.room);
          pk.pack(r.first_seq);
        } else if constexpr (std::is_same_v<T, persistence::ReconcileMessage>) {
          pk.pack_array(3);
          pk.pack(std::uint8_t{reconcile_message});
          pk.pack(r.room);
          pk.pack(r.seq);
        } else {
          static_assert(std::is_same_v<T, persistence::StoredMessage>);
          // Mentions when there are any; a lifecycle entry's [kind, target, key, on] after
          // them (mentions then packed even when none), and a message's reply_to and
          // thread after those when it has either: only what chat decides, the store
          // keeps the target's (the root's) state.
          const bool refs = r.entry.reply_to != 0 || r.entry.thread != 0;
          const bool lifecycle = r.entry.kind != EntryKind::message || refs;
          pk.pack_array(lifecycle ? 9 : r.mentions.empty() ? 7 : 8);
          pk.pack(std::uint8_t{message});
          pk.pack(r.room);
          pk.pack(r.seq);
          pk.pack(r.user);
          pk.pack(r.ts_ms);
          pk.pack(r.body);
          pk.pack(r.client_msg_id);
          if (!r.mentions.empty() || lifecycle) pk.pack(r.mentions);
          if (lifecycle) {
            pk.pack_array(refs ? 6 : 4);
            pk.pack(static_cast<std::uint8_t>(r.entry.kind));
            pk.pack(r.entry.target);
            pk.pack(r.entry.key);
            pk.pack(r.entry.on);
            if (refs) {
              pk.pack(r.entry.reply_to);
              pk.pack(r.entry.thread);
            }
          }
        }
      },
      record);
}

Result<persistence::Record> read_record(const MsgpackNode& o) {
  auto bad = [] { return make_error(errc::bad_field, "malformed record in append batch"); };
  if (!o.is(MsgpackType::array) || o.size < 3) return bad();
  // The record's fields (a record has at most 9; any past them are never read).
  std::array<const MsgpackNode*, 9> a{};
  auto field = o.elements().begin();
  for (std::size_t i = 0; i < a.size() && i < o.size; ++i, ++field) a[i] = &*field;
  const std::uint32_t size = o.size;
  // Each throws msgpack::type_error when the field is not of its type.
  auto str = [&](std::size_t i) { return msgpack_as<std::string>(*a[i]); };
  auto u64 = [&](std::size_t i) { return msgpack_as<std::uint64_t>(*a[i]); };
  auto flag = [&](std::size_t i) { return msgpack_as<bool>(*a[i]); };
  try {
    switch (msgpack_as<std::uint8_t>(*a[0])) {
      case create_room:
        if (size != 5) return bad();
        return persistence::Record{persistence::CreateRoom{str(1), str(2), u64(3), flag(4)}};
      case add_member: {
        if (size != 4) return bad();
        const auto role = msgpack_as<std::uint8_t>(*a[3]);
        if (role > static_cast<std::uint8_t>(Role::reader)) return bad();
        return persistence::Record{persistence::AddMember{str(1), str(2), static_cast<Role>(role)}};
      }
      case delete_room:
        return persistence::Record{persistence::DeleteRoom{str(1)}};
      case remove_member:  // [kind, room, user, remember, ban]; log entries of earlier nodes lack the flags
        if (size > 5) return bad();
        return persistence::Record{persistence::RemoveMember{str(1), str(2), size >= 4 && flag(3), size == 5 && flag(4)}};
      case log_entry: {
        if (size != 5 || !a[4]->is(MsgpackType::bin)) return bad();
        return persistence::Record{persistence::LogEntry{str(1), u64(2), u64(3), std::string(a[4]->view())}};
      }
      case trim_log:
        return persistence::Record{persistence::TrimLog{str(1), u64(2)}};
      case shard_vote:
        if (size != 5 && size != 6) return bad();
        return persistence::Record{persistence::ShardVote{str(1), u64(2), str(3), str(4), size == 6 ? u64(5) : 0}};
      case truncate_log:
        return persistence::Record{persistence::TruncateLog{str(1), u64(2)}};
      case reconcile_message:
        return persistence::Record{persistence::ReconcileMessage{str(1), u64(2)}};
      case set_receipts:
        if (size != 3) return bad();
        return persistence::Record{persistence::SetReceipts{str(1), flag(2)}};
      case set_retention:
        if (size != 5) return bad();
        return persistence::Record{persistence::SetRetention{str(1), {u64(2), u64(3), flag(4)}}};
      case trim_room:
        if (size != 3) return bad();
        return persistence::Record{persistence::TrimRoom{str(1), u64(2)}};
      case mark_read:
        if (size != 4) return bad();
        return persistence::Record{persistence::MarkRead{str(1), str(2), u64(3)}};
      case message:
      {
        if (size < 7 || size > 9) return bad();
        persistence::StoredMessage m{str(1), u64(2), str(3), u64(4), str(5), str(6)};
        if (size >= 8) m.mentions = msgpack_as<std::vector<std::string>>(*a[7]);
        if (size == 9) {  // a lifecycle entry: [kind, target, key, on]; a message: [0, 0, "", true, reply_to, thread]
          const MsgpackNode& e = *a[8];
          if (!e.is(MsgpackType::array) || (e.size != 4 && e.size != 6)) return bad();
          auto f = e.elements().begin();
          const auto kind = msgpack_as<std::uint8_t>(*f++);
          if ((kind == 0) != (e.size == 6) || kind > static_cast<std::uint8_t>(EntryKind::react)) return bad();
          m.entry.kind = static_cast<EntryKind>(kind);
          m.entry.target = msgpack_as<std::uint64_t>(*f++);
          m.entry.key = msgpack_as<std::string>(*f++);
          m.entry.on = msgpack_as<bool>(*f++);
          if (e.size == 6) {
            m.entry.reply_to = msgpack_as<std::uint64_t>(*f++);
            m.entry.thread = msgpack_as<std::uint64_t>(*f);
          }
        }
        return persistence::Record{std::move(m)};
      }
      default:
        return bad();
    }
  } catch (const msgpack::type_error&) {
    return bad();
  }
}

}  // namespace

std::string encode(const Message& message) {
  transport::FrameBuffer buffer(128);
  Packer pk(buffer);
  std::visit(
      [&](const auto& m) {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, Append>) {
          pk.pack_map(4);
          pack_field(pk, "op", std::string_view("append"));
          pack_field(pk, "batch", m.batch);
          pack_field(pk, "after", m.after);
          pk.pack(std::string_view("records"));
          pk.pack_array(static_cast<std::uint32_t>(m.records.size()));
          for (const auto& r : m.records) pack_record(pk, r);
        } else if constexpr (std::is_same_v<T, Appended>) {
          pk.pack_map(4);
          pack_field(pk, "op", std::string_view("appended"));
          pack_field(pk, "batch", m.batch);
          pack_field(pk, "code", errc_name(m.error.code));
          pack_field(pk, "message", m.error.message);
        } else if constexpr (std::is_same_v<T, Read>) {
          pk.pack_map(10);
          pack_field(pk, "op", std::string_view("read"));
          pack_field(pk, "reader", m.reader);
          pack_field(pk, "thread", m.thread);
          pack_field(pk, "up_to", m.up_to);
          pack_field(pk, "corr", m.corr);
          pack_field(pk, "reply_id", m.reply_id);
          pack_field(pk, "room", m.room);
          pack_field(pk, "mode", static_cast<std::uint8_t>(m.mode));
          pack_field(pk, "seq", m.seq);
          pack_field(pk, "limit", m.limit);
        } else if constexpr (std::is_same_v<T, AgeScan>) {
          pk.pack_map(6);
          pack_field(pk, "op", std::string_view("age_scan"));
          pack_field(pk, "corr", m.corr);
          pack_field(pk, "room", m.room);
          pack_field(pk, "from", m.from);
          pack_field(pk, "limit", m.limit);
          pack_field(pk, "cutoff_ms", m.cutoff_ms);
        } else if constexpr (std::is_same_v<T, AgeScanned>) {
          pk.pack_map(7);
          pack_field(pk, "op", std::string_view("age_scanned"));
          pack_field(pk, "corr", m.corr);
          pack_field(pk, "room", m.room);
          pack_field(pk, "seq", m.seq);
          pack_field(pk, "ts_ms", m.ts_ms);
          pack_field(pk, "code", errc_name(m.error.code));
          pack_field(pk, "message", m.error.message);
        } else if constexpr (std::is_same_v<T, BackupRead>) {
          pk.pack_map(6);
          pack_field(pk, "op", std::string_view("backup"));
          pack_field(pk, "corr", m.corr);
          pack_field(pk, "reply_id", m.reply_id);
          pack_field(pk, "backup", m.backup);
          pack_field(pk, "offset", m.offset);
          pack_bin_field(pk, "asker", m.asker);
        } else if constexpr (std::is_same_v<T, ReadLog>) {
          pk.pack_map(6);
          pack_field(pk, "op", std::string_view("read_log"));
          pack_field(pk, "corr", m.corr);
          pack_field(pk, "shard", m.shard);
          pack_field(pk, "after", m.after);
          pack_field(pk, "max_entries", m.max_entries);
          pack_field(pk, "max_bytes", m.max_bytes);
        } else if constexpr (std::is_same_v<T, LogPage>) {
          pk.pack_map(6);
          pack_field(pk, "op", std::string_view("log_page"));
          pack_field(pk, "corr", m.corr);
          pack_field(pk, "trimmed", m.trimmed);
          pack_field(pk, "code", errc_name(m.error.code));
          pack_field(pk, "message", m.error.message);
          pk.pack(std::string_view("entries"));
          pk.pack_array(static_cast<std::uint32_t>(m.entries.size()));
          for (const auto& e : m.entries) pack_record(pk, persistence::Record{e});
        } else if constexpr (std::is_same_v<T, Lookup>) {
          pk.pack_map(2);
          pack_field(pk, "op", std::string_view("lookup"));
          pk.pack(std::string_view("items"));
          pk.pack_array(static_cast<std::uint32_t>(m.items.size()));
          for (const auto& item : m.items) {
            pk.pack_map(6);
            pack_field(pk, "corr", item.corr);
            pack_field(pk, "room", item.room);
            pack_field(pk, "seq", item.seq);
            pack_field(pk, "user", item.user);
            pack_field(pk, "key", item.key);
            pack_field(pk, "also", item.also);
          }
        } else if constexpr (std::is_same_v<T, Looked>) {
          pk.pack_map(2);
          pack_field(pk, "op", std::string_view("looked"));
          pk.pack(std::string_view("items"));
          pk.pack_array(static_cast<std::uint32_t>(m.items.size()));
          for (const auto& item : m.items) {
            pk.pack_map(5);
            pack_field(pk, "corr", item.corr);
            pk.pack(std::string_view("target"));
            pack_target(pk, item.target);
            pk.pack(std::string_view("also"));
            pack_target(pk, item.also);
            pack_field(pk, "code", errc_name(item.error.code));
            pack_field(pk, "message", item.error.message);
          }
        } else if constexpr (std::is_same_v<T, Truncate>) {
          pk.pack_map(4);
          pack_field(pk, "op", std::string_view("truncate"));
          pack_field(pk, "corr", m.corr);
          pack_field(pk, "shard", m.shard);
          pack_field(pk, "lsn", m.lsn);
        } else if constexpr (std::is_same_v<T, Truncated>) {
          pk.pack_map(5);
          pack_field(pk, "op", std::string_view("truncated"));
          pack_field(pk, "corr", m.corr);
          pack_field(pk, "code", errc_name(m.error.code));
          pack_field(pk, "message", m.error.message);
          pk.pack(std::string_view("reconciled"));
          pk.pack_array(static_cast<std::uint32_t>(m.reconciled.size()));
          for (const auto& r : m.reconciled) pack_record(pk, persistence::Record{r});
        } else if constexpr (std::is_same_v<T, CopyOp>) {
          pk.pack_map(8);
          pack_field(pk, "op", std::string_view("copy"));
          pack_field(pk, "kind", static_cast<std::uint8_t>(m.kind));
          pack_field(pk, "corr", m.corr);
          pack_field(pk, "copy", m.copy);
          pack_field(pk, "shard", m.shard);
          pack_field(pk, "offset", m.offset);
          pack_field(pk, "max", m.max);
          pack_bin_field(pk, "data", m.data);
        } else if constexpr (std::is_same_v<T, CopyDone>) {
          pk.pack_map(11);
          pack_field(pk, "op", std::string_view("copy_done"));
          pack_field(pk, "corr", m.corr);
          pack_field(pk, "size", m.size);
          pack_field(pk, "reconciled", m.reconciled);
          pack_bin_field(pk, "data", m.data);
          pack_field(pk, "term", m.position.term);
          pack_field(pk, "lsn", m.position.lsn);
          pk.pack(std::string_view("terms"));  // term, first lsn, term, first lsn, ...
          pk.pack_array(static_cast<std::uint32_t>(m.terms.size() * 2));
          for (const auto& t : m.terms) {
            pk.pack(t.term);
            pk.pack(t.lsn);
          }
          pk.pack(std::string_view("view"));
          pk.pack_array(static_cast<std::uint32_t>(m.view.size()));
          for (const auto& r : m.view) pack_record(pk, r);
          pack_field(pk, "code", errc_name(m.error.code));
          pack_field(pk, "message", m.error.message);
        } else {
          static_assert(std::is_same_v<T, Page>);
          pk.pack_map(3);
          pack_field(pk, "op", std::string_view("page"));
          pack_field(pk, "corr", m.corr);
          pack_bin_field(pk, "frame", m.reply_frame);
        }
      },
      message);
  return std::move(buffer.bytes);
}

Result<Message> decode(std::string_view frame) {
  static const transport::Limits limits = internal_limits();
  auto handle = transport::unpack_map(frame, limits);
  if (!handle) return handle.error();
  FieldReader f(handle->root());
  std::string op;
  if (!f.text("op", op, 16)) return f.error();
  if (op == "append") {
    Append m;
    MsgpackElements items;
    if (!f.u64("batch", m.batch) || !f.u64("after", m.after) || !f.array("records", items)) return f.error();
    m.records.reserve(items.size());
    for (const MsgpackNode& item : items) {
      auto r = read_record(item);
      if (!r) return r.error();
      m.records.push_back(std::move(*r));
    }
    return Message{std::move(m)};
  }
  if (op == "appended") {
    Appended m;
    std::string code;
    if (!f.u64("batch", m.batch) || !f.text("code", code, 64) || !f.text("message", m.error.message, 1 << 16))
      return f.error();
    m.error.code = errc_from_name(code);  // "ok" is errc::ok
    return Message{std::move(m)};
  }
  if (op == "read") {
    Read m;
    std::uint64_t mode = 0, limit = 0;
    if (!f.u64("corr", m.corr) || !f.u64("reply_id", m.reply_id) || !f.text("room", m.room, 1024) ||
        !f.u64("mode", mode) || !f.u64("seq", m.seq) || !f.u64("limit", limit) || !f.u64("up_to", m.up_to) ||
        !f.text("reader", m.reader, 1024) || !f.u64("thread", m.thread))
      return f.error();
    if (mode > 2) return make_error(errc::bad_field, "unknown read mode");
    m.mode = static_cast<Read::Mode>(mode);
    m.limit = static_cast<std::uint32_t>(limit);
    return Message{std::move(m)};
  }
  if (op == "age_scan") {
    AgeScan m;
    if (!f.u64("corr", m.corr) || !f.text("room", m.room, 1024) || !f.u64("from", m.from) || !f.u64("limit", m.limit) ||
        !f.u64("cutoff_ms", m.cutoff_ms))
      return f.error();
    return Message{std::move(m)};
  }
  if (op == "age_scanned") {
    AgeScanned m;
    std::string code;
    if (!f.u64("corr", m.corr) || !f.text("room", m.room, 1024) || !f.u64("seq", m.seq) || !f.u64("ts_ms", m.ts_ms) ||
        !f.text("code", code, 64) || !f.text("message", m.error.message, 1 << 16))
      return f.error();
    m.error.code = errc_from_name(code);
    return Message{std::move(m)};
  }
  if (op == "lookup") {
    Lookup m;
    MsgpackElements items;
    if (!f.array("items", items)) return f.error();
    m.items.reserve(items.size());
    for (const MsgpackNode& node : items) {
      if (!node.is(MsgpackType::map)) return make_error(errc::bad_field, "malformed lookup");
      FieldReader i(node);
      Lookup::Item& item = m.items.emplace_back();
      if (!i.u64("corr", item.corr) || !i.text("room", item.room, 1024) || !i.u64("seq", item.seq) ||
          !i.text("user", item.user, 1024) || !i.text("key", item.key, 1024) || !i.u64("also", item.also))
        return i.error();
    }
    return Message{std::move(m)};
  }
  if (op == "looked") {
    Looked m;
    MsgpackElements items;
    if (!f.array("items", items)) return f.error();
    m.items.reserve(items.size());
    for (const MsgpackNode& node : items) {
      if (!node.is(MsgpackType::map)) return make_error(errc::bad_field, "malformed looked");
      FieldReader i(node);
      Looked::Item& item = m.items.emplace_back();
      std::string code;
      if (!i.u64("corr", item.corr) || !i.text("code", code, 64) || !i.text("message", item.error.message, 1 << 16))
        return i.error();
      auto target = read_target(i.find("target"));
      auto also = read_target(i.find("also"));
      if (!target || !also) return make_error(errc::bad_field, "malformed looked");
      item.target = std::move(*target);
      item.also = std::move(*also);
      item.error.code = errc_from_name(code);
    }
    return Message{std::move(m)};
  }
  if (op == "backup") {
    BackupRead m;
    if (!f.u64("corr", m.corr) || !f.u64("reply_id", m.reply_id) || !f.u64("backup", m.backup) ||
        !f.u64("offset", m.offset) || !f.bytes("asker", m.asker, 1024))
      return f.error();
    return Message{std::move(m)};
  }
  if (op == "page") {
    Page m;
    if (!f.u64("corr", m.corr) || !f.bytes("frame", m.reply_frame, limits.max_string)) return f.error();
    return Message{std::move(m)};
  }
  if (op == "read_log") {
    ReadLog m;
    if (!f.u64("corr", m.corr) || !f.text("shard", m.shard, 1024) || !f.u64("after", m.after) ||
        !f.u64("max_entries", m.max_entries) || !f.u64("max_bytes", m.max_bytes))
      return f.error();
    return Message{std::move(m)};
  }
  if (op == "log_page") {
    LogPage m;
    std::string code;
    MsgpackElements items;
    if (!f.u64("corr", m.corr) || !f.boolean("trimmed", m.trimmed) || !f.text("code", code, 64) ||
        !f.text("message", m.error.message, 1 << 16) || !f.array("entries", items))
      return f.error();
    m.error.code = errc_from_name(code);
    for (const MsgpackNode& item : items) {
      auto r = read_record(item);
      if (!r || !std::holds_alternative<persistence::LogEntry>(*r))
        return make_error(errc::bad_field, "malformed log entry in log page");
      m.entries.push_back(std::get<persistence::LogEntry>(std::move(*r)));
    }
    return Message{std::move(m)};
  }
  if (op == "truncate") {
    Truncate m;
    if (!f.u64("corr", m.corr) || !f.text("shard", m.shard, 1024) || !f.u64("lsn", m.lsn)) return f.error();
    return Message{std::move(m)};
  }
  if (op == "truncated") {
    Truncated m;
    std::string code;
    MsgpackElements items;
    if (!f.u64("corr", m.corr) || !f.text("code", code, 64) || !f.text("message", m.error.message, 1 << 16) ||
        !f.array("reconciled", items))
      return f.error();
    m.error.code = errc_from_name(code);
    for (const MsgpackNode& item : items) {
      auto r = read_record(item);
      if (!r || !std::holds_alternative<persistence::StoredMessage>(*r))
        return make_error(errc::bad_field, "malformed message in truncated");
      m.reconciled.push_back(std::get<persistence::StoredMessage>(std::move(*r)));
    }
    return Message{std::move(m)};
  }
  if (op == "copy") {
    CopyOp m;
    std::uint64_t kind = 0;
    if (!f.u64("kind", kind) || !f.u64("corr", m.corr) || !f.u64("copy", m.copy) || !f.text("shard", m.shard, 1024) ||
        !f.u64("offset", m.offset) || !f.u64("max", m.max) || !f.bytes("data", m.data, limits.max_string))
      return f.error();
    if (kind > static_cast<std::uint64_t>(CopyOp::Kind::install)) return make_error(errc::bad_field, "unknown copy op");
    m.kind = static_cast<CopyOp::Kind>(kind);
    return Message{std::move(m)};
  }
  if (op == "copy_done") {
    CopyDone m;
    std::string code;
    MsgpackElements terms, view;
    if (!f.u64("corr", m.corr) || !f.u64("size", m.size) || !f.u64("reconciled", m.reconciled) ||
        !f.bytes("data", m.data, limits.max_string) ||
        !f.u64("term", m.position.term) || !f.u64("lsn", m.position.lsn) || !f.array("terms", terms) ||
        !f.array("view", view) || !f.text("code", code, 64) || !f.text("message", m.error.message, 1 << 16))
      return f.error();
    m.error.code = errc_from_name(code);
    if (terms.size() % 2 != 0) return make_error(errc::bad_field, "malformed terms in copy_done");
    try {
      for (auto term = terms.begin(); term != terms.end();) {  // pairs: term, then its first lsn
        const auto number = msgpack_as<std::uint64_t>(*term++);
        m.terms.push_back({number, msgpack_as<std::uint64_t>(*term++)});
      }
    } catch (const msgpack::type_error&) {
      return make_error(errc::bad_field, "malformed terms in copy_done");
    }
    for (const MsgpackNode& item : view) {
      auto r = read_record(item);
      if (!r) return r.error();
      m.view.push_back(std::move(*r));
    }
    return Message{std::move(m)};
  }
  return make_error(errc::unknown_op, "unknown internal op '" + op + "'");
}

std::string encode_records(std::span<const persistence::Record> records) {
  transport::FrameBuffer buffer(128);
  Packer pk(buffer);
  pk.pack_array(static_cast<std::uint32_t>(records.size()));
  for (const auto& r : records) pack_record(pk, r);
  return std::move(buffer.bytes);
}

Result<std::vector<persistence::Record>> decode_records(std::string_view body, const transport::Limits& limits) {
  auto handle = transport::unpack_value(body, limits);
  if (!handle) return handle.error();
  const MsgpackNode& o = handle->root();
  if (!o.is(MsgpackType::array)) return make_error(errc::bad_frame, "replicated records: not an array");
  std::vector<persistence::Record> records;
  records.reserve(o.size);
  for (const MsgpackNode& item : o.elements()) {
    auto r = read_record(item);
    if (!r) return r.error();
    if (!(std::holds_alternative<persistence::CreateRoom>(*r) || std::holds_alternative<persistence::AddMember>(*r) ||
          std::holds_alternative<persistence::RemoveMember>(*r) || std::holds_alternative<persistence::DeleteRoom>(*r) ||
          std::holds_alternative<persistence::StoredMessage>(*r) || std::holds_alternative<persistence::MarkRead>(*r) ||
          std::holds_alternative<persistence::SetReceipts>(*r) ||
          std::holds_alternative<persistence::SetRetention>(*r) || std::holds_alternative<persistence::TrimRoom>(*r)))
      return make_error(errc::bad_field, "replicated records: a log record among the records");
    records.push_back(std::move(*r));
  }
  return records;
}

namespace {
constexpr char kHandedOver = '\xc1';  // never used by msgpack: no encoded frame starts with it
}  // namespace

std::string hand_over(Message&& message) {
  auto* moved = new Message(std::move(message));
  std::string frame(1 + sizeof moved, kHandedOver);
  std::memcpy(frame.data() + 1, &moved, sizeof moved);
  return frame;
}

Result<Message> receive(std::string_view frame) {
  if (frame.size() == 1 + sizeof(Message*) && frame[0] == kHandedOver) {
    Message* moved = nullptr;
    std::memcpy(&moved, frame.data() + 1, sizeof moved);
    std::unique_ptr<Message> owned(moved);
    return std::move(*owned);
  }
  return decode(frame);
}

}  // namespace switchboard::actors::store
