#include "switchboard/actors/presence_sync.hpp"

#include "switchboard/common/overloaded.hpp"
#include "switchboard/transport/codec.hpp"

namespace switchboard::actors::presence_sync {
namespace {

using transport::pack_field;
using transport::Packer;

void pack_op(Packer& pk, std::uint32_t fields, std::string_view op) {
  pk.pack_map(fields + 1);
  pack_field(pk, "op", op);
}

void pack_state(Packer& pk, const UserState& u) {
  pk.pack_map(u.last_seen ? 6 : 5);
  pack_field(pk, "user", u.user);
  pack_field(pk, "online", u.online);
  pack_field(pk, "status", std::string_view(transport::availability_name(u.status)));
  pack_field(pk, "text", u.text);
  pack_field(pk, "at", u.at_ms);
  if (u.last_seen) pack_field(pk, "last_seen", *u.last_seen);
}

bool read_state(transport::FieldReader& f, UserState& u, const transport::Limits& limits) {
  return f.name("user", u.user, limits.max_user) && f.boolean("online", u.online) &&
         transport::read_availability(f, "status", u.status) && f.text("text", u.text, limits.max_status_text) &&
         f.u64("at", u.at_ms) && f.opt_u64("last_seen", u.last_seen);  // absent from nodes of earlier versions
}

/// Reads the array of maps at `key`, each with `read_one`.
template <class T, class ReadOne>
bool read_maps(transport::FieldReader& f, std::string_view key, std::vector<T>& out, ReadOne read_one) {
  MsgpackElements items;
  if (!f.array(key, items)) return false;
  out.resize(items.size());
  std::size_t i = 0;
  for (const MsgpackNode& map : items) {
    if (!map.is(MsgpackType::map))
      return f.fail(errc::bad_field, "field '" + std::string(key) + "' must hold maps, got " +
                                         transport::type_name(map));
    transport::FieldReader item(map);
    if (!read_one(item, out[i++])) return f.fail(item.error().code, std::string(key) + ": " + item.error().message);
  }
  return true;
}

}  // namespace

std::string encode(const Frame& frame) {
  transport::FrameBuffer buffer(128);
  Packer pk(buffer);
  std::visit(Overloaded{
                 [&](const Beat& b) {
                   pack_op(pk, 2, "beat");
                   pack_field(pk, "inc", b.incarnation);
                   pack_field(pk, "seq", b.seq);
                 },
                 [&](const Resync&) { pack_op(pk, 0, "resync"); },
                 [&](const Bye& b) {
                   pack_op(pk, b.at_ms ? 1 : 0, "bye");
                   if (b.at_ms) pack_field(pk, "at", *b.at_ms);
                 },
                 [&](const UserChange& c) {
                   pack_op(pk, 3, "user");
                   pack_field(pk, "inc", c.incarnation);
                   pack_field(pk, "seq", c.seq);
                   pk.pack(std::string_view("state"));
                   pack_state(pk, c.state);
                 },
                 [&](const MemberChange& c) {
                   pack_op(pk, 6, "member");
                   pack_field(pk, "inc", c.incarnation);
                   pack_field(pk, "seq", c.seq);
                   pack_field(pk, "room", c.room);
                   pack_field(pk, "user", c.user);
                   pack_field(pk, "joined", c.joined);
                   pack_field(pk, "private", c.private_room);
                 },
                 [&](const SnapshotPart& s) {
                   pack_op(pk, 6, "snapshot");
                   pack_field(pk, "inc", s.incarnation);
                   pack_field(pk, "seq", s.seq);
                   pack_field(pk, "part", s.part);
                   pack_field(pk, "last", s.last);
                   pk.pack(std::string_view("users"));
                   pk.pack_array(static_cast<std::uint32_t>(s.users.size()));
                   for (const auto& u : s.users) pack_state(pk, u);
                   pk.pack(std::string_view("rooms"));
                   pk.pack_array(static_cast<std::uint32_t>(s.rooms.size()));
                   for (const auto& r : s.rooms) {
                     pk.pack_map(3);
                     pack_field(pk, "room", r.room);
                     pack_field(pk, "members", r.members);
                     pack_field(pk, "private", r.private_room);
                   }
                 },
                 [&](const TypingNote& t) {
                   pack_op(pk, 3, "typing");
                   pack_field(pk, "room", t.room);
                   pack_field(pk, "user", t.user);
                   pack_field(pk, "ttl_ms", t.ttl_ms);
                 },
             },
             frame);
  return std::move(buffer.bytes);
}

Result<Frame> decode(std::string_view frame, const transport::Limits& limits) {
  auto handle = transport::unpack_map(frame, limits);
  if (!handle) return handle.error();
  transport::FieldReader f(handle->root());
  std::string op;
  if (!f.text("op", op, 16)) return f.error();
  auto done = [&](auto&& value) -> Result<Frame> {
    if (!f.ok()) return f.error();
    return Frame(std::forward<decltype(value)>(value));
  };
  if (op == "beat") {
    Beat b;
    f.u64("inc", b.incarnation) && f.u64("seq", b.seq);
    return done(b);
  }
  if (op == "resync") return done(Resync{});
  if (op == "bye") {
    Bye b;
    f.opt_u64("at", b.at_ms);
    return done(b);
  }
  if (op == "user") {
    UserChange c;
    if (f.u64("inc", c.incarnation) && f.u64("seq", c.seq)) {
      const MsgpackNode* state = f.find("state");
      if (state == nullptr || !state->is(MsgpackType::map)) {
        f.fail(errc::bad_field, "field 'state' must be a map");
      } else {
        transport::FieldReader s(*state);
        if (!read_state(s, c.state, limits)) f.fail(s.error().code, "state: " + s.error().message);
      }
    }
    return done(std::move(c));
  }
  if (op == "member") {
    MemberChange c;
    f.u64("inc", c.incarnation) && f.u64("seq", c.seq) && f.name("room", c.room, limits.max_room) &&
        f.name("user", c.user, limits.max_user) && f.boolean("joined", c.joined) &&
        f.boolean("private", c.private_room);
    return done(std::move(c));
  }
  if (op == "snapshot") {
    SnapshotPart s;
    f.u64("inc", s.incarnation) && f.u64("seq", s.seq) && f.u64("part", s.part) && f.boolean("last", s.last) &&
        read_maps(f, "users", s.users,
                  [&](transport::FieldReader& item, UserState& u) { return read_state(item, u, limits); }) &&
        read_maps(f, "rooms", s.rooms, [&](transport::FieldReader& item, RoomMembers& r) {
          return item.name("room", r.room, limits.max_room) && item.text_array("members", r.members, limits.max_user) &&
                 item.boolean("private", r.private_room);
        });
    return done(std::move(s));
  }
  if (op == "typing") {
    TypingNote t;
    f.name("room", t.room, limits.max_room) && f.name("user", t.user, limits.max_user) && f.u64("ttl_ms", t.ttl_ms);
    return done(std::move(t));
  }
  return make_error(errc::unknown_op, "unknown presence sync op '" + op + "'");
}

std::vector<SnapshotPart> split_snapshot(std::uint64_t incarnation, std::uint64_t seq, std::vector<UserState> users,
                                         std::vector<RoomMembers> rooms) {
  std::vector<SnapshotPart> parts(1);
  std::size_t entries = 0;
  auto room_for = [&](std::size_t needed) {
    if (entries + needed > kSnapshotPartEntries && entries > 0) {
      parts.emplace_back();
      entries = 0;
    }
    entries += needed;
  };
  for (auto& u : users) {
    room_for(1);
    parts.back().users.push_back(std::move(u));
  }
  for (auto& r : rooms) {
    if (r.members.empty()) {
      room_for(1);
      parts.back().rooms.push_back({std::move(r.room), {}, r.private_room});
      continue;
    }
    for (std::size_t i = 0; i < r.members.size();) {
      room_for(1);
      RoomMembers& part = parts.back().rooms.emplace_back(RoomMembers{r.room, {}, r.private_room});
      part.members.push_back(std::move(r.members[i++]));
      while (i < r.members.size() && entries < kSnapshotPartEntries) {
        part.members.push_back(std::move(r.members[i++]));
        ++entries;
      }
    }
  }
  for (std::size_t i = 0; i < parts.size(); ++i) {
    parts[i].incarnation = incarnation;
    parts[i].seq = seq;
    parts[i].part = i;
    parts[i].last = i + 1 == parts.size();
  }
  return parts;
}

}  // namespace switchboard::actors::presence_sync
