#include "switchboard/actors/webhook/webhook_frames.hpp"

#include <cctype>

#include <msgpack.hpp>

#include "switchboard/actors/grants.hpp"
#include "switchboard/common/event_rooms.hpp"
#include "switchboard/common/msgpack_reader.hpp"
#include "switchboard/common/overloaded.hpp"
#include "switchboard/transport/codec.hpp"

namespace switchboard::actors::webhook {
namespace {

enum Kind : std::uint8_t { committed = 1, backlog_ask = 2, backlog = 3, cursor = 4, audience_ask = 5, audience = 6, fetch = 7, presence_change = 8 };

msgpack::unpack_limit limits() {
  // From this node's own actors: the limits only keep a bug from allocating wildly.
  return msgpack::unpack_limit(1u << 20, 8, 1u << 20, 1u << 30, 1u << 20, 6);
}

}  // namespace

std::string encode(const Frame& frame) {
  transport::FrameBuffer buffer(64);
  transport::Packer pk(buffer);
  std::visit(Overloaded{
                 [&](const Committed& c) {
                   pk.pack_array(2);
                   pk.pack(std::uint8_t{committed});
                   pk.pack_array(static_cast<std::uint32_t>(c.rooms.size() * 2));
                   for (const auto& r : c.rooms) {
                     pk.pack(r.room);
                     pk.pack(r.seq);
                   }
                 },
                 [&](const BacklogAsk& a) {
                   pk.pack_array(7);
                   pk.pack(std::uint8_t{backlog_ask});
                   pk.pack(a.webhook);
                   pk.pack(a.after);
                   pk.pack(a.room);
                   pk.pack(a.rooms);
                   pk.pack(a.messages);
                   pk.pack(a.events);
                 },
                 [&](const PresenceChange& p) {
                   pk.pack_array(6);
                   pk.pack(std::uint8_t{presence_change});
                   pk.pack(static_cast<std::uint8_t>(p.kind));
                   pk.pack(p.user);
                   pk.pack(p.status);
                   pk.pack(p.text);
                   pk.pack(p.ts_ms);
                 },
                 [&](const Fetch& a) {
                   pk.pack_array(5);
                   pk.pack(std::uint8_t{fetch});
                   pk.pack(a.id);
                   pk.pack(a.room);
                   pk.pack(a.after);
                   pk.pack(a.limit);
                 },
                 [&](const Backlog& b) {
                   pk.pack_array(5);
                   pk.pack(std::uint8_t{backlog});
                   pk.pack(b.webhook);
                   pk.pack(b.room);
                   pk.pack_array(static_cast<std::uint32_t>(b.rows.size() * 3));
                   for (const auto& r : b.rows) {
                     pk.pack(r.room);
                     pk.pack(r.cursor);
                     pk.pack(r.last);
                   }
                   pk.pack(b.more);
                 },
                 [&](const Cursor& c) {
                   pk.pack_array(4);
                   pk.pack(std::uint8_t{cursor});
                   pk.pack(c.webhook);
                   pk.pack(c.room);
                   pk.pack(c.seq);
                 },
                 [&](const AudienceAsk& a) {
                   pk.pack_array(3);
                   pk.pack(std::uint8_t{audience_ask});
                   pk.pack(a.webhook);
                   pk.pack(a.room);
                 },
                 [&](const Audience& a) {
                   pk.pack_array(5);
                   pk.pack(std::uint8_t{audience});
                   pk.pack(a.webhook);
                   pk.pack(a.room);
                   pk.pack(a.exists);
                   pk.pack_array(static_cast<std::uint32_t>(a.members.size() * 3));
                   for (const auto& m : a.members) {
                     pk.pack(m.user);
                     pk.pack(m.level);
                     pk.pack(m.read);
                   }
                 },
             },
             frame);
  return std::move(buffer.bytes);
}

std::optional<Frame> decode(std::string_view bytes) {
  MsgpackReader reader;
  if (!reader.read(bytes, limits()) || reader.consumed() != bytes.size()) return std::nullopt;
  const MsgpackNode& root = reader.root();
  if (!root.is(MsgpackType::array) || root.size < 2) return std::nullopt;
  std::vector<const MsgpackNode*> f;
  for (const MsgpackNode& e : root.elements()) f.push_back(&e);
  try {
    switch (msgpack_as<std::uint8_t>(*f[0])) {
      case committed: {
        if (f.size() != 2 || !f[1]->is(MsgpackType::array) || f[1]->size % 2) return std::nullopt;
        Committed c;
        const MsgpackNode* at = f[1] + 1;
        for (std::uint32_t i = 0; i < f[1]->size / 2; ++i) {
          RoomSeq r{msgpack_as<std::string>(*at), msgpack_as<std::uint64_t>(*at->next())};
          at = at->next()->next();
          c.rooms.push_back(std::move(r));
        }
        return Frame{std::move(c)};
      }
      case backlog_ask:
        if (f.size() != 7) return std::nullopt;
        return Frame{BacklogAsk{msgpack_as<std::string>(*f[1]), msgpack_as<std::string>(*f[2]),
                                msgpack_as<std::string>(*f[3]), msgpack_as<std::vector<std::string>>(*f[4]),
                                msgpack_as<bool>(*f[5]), msgpack_as<bool>(*f[6])}};
      case presence_change: {
        if (f.size() != 6) return std::nullopt;
        const auto kind = msgpack_as<std::uint8_t>(*f[1]);
        if (kind > static_cast<std::uint8_t>(PresenceChange::Kind::status)) return std::nullopt;
        return Frame{PresenceChange{static_cast<PresenceChange::Kind>(kind), msgpack_as<std::string>(*f[2]),
                                    msgpack_as<std::string>(*f[3]), msgpack_as<std::string>(*f[4]),
                                    msgpack_as<std::uint64_t>(*f[5])}};
      }
      case fetch:
        if (f.size() != 5) return std::nullopt;
        return Frame{Fetch{msgpack_as<std::uint64_t>(*f[1]), msgpack_as<std::string>(*f[2]),
                           msgpack_as<std::uint64_t>(*f[3]), msgpack_as<std::uint32_t>(*f[4])}};
      case backlog: {
        if (f.size() != 5 || !f[3]->is(MsgpackType::array) || f[3]->size % 3) return std::nullopt;
        Backlog b;
        b.webhook = msgpack_as<std::string>(*f[1]);
        b.room = msgpack_as<std::string>(*f[2]);
        const MsgpackNode* at = f[3] + 1;
        for (std::uint32_t i = 0; i < f[3]->size / 3; ++i) {
          BacklogRow r;
          r.room = msgpack_as<std::string>(*at);
          at = at->next();
          r.cursor = msgpack_as<std::uint64_t>(*at);
          at = at->next();
          r.last = msgpack_as<std::uint64_t>(*at);
          at = at->next();
          b.rows.push_back(std::move(r));
        }
        b.more = msgpack_as<bool>(*f[4]);
        return Frame{std::move(b)};
      }
      case cursor:
        if (f.size() != 4) return std::nullopt;
        return Frame{Cursor{msgpack_as<std::string>(*f[1]), msgpack_as<std::string>(*f[2]), msgpack_as<std::uint64_t>(*f[3])}};
      case audience_ask:
        if (f.size() != 3) return std::nullopt;
        return Frame{AudienceAsk{msgpack_as<std::string>(*f[1]), msgpack_as<std::string>(*f[2])}};
      case audience: {
        if (f.size() != 5 || !f[4]->is(MsgpackType::array) || f[4]->size % 3) return std::nullopt;
        Audience a;
        a.webhook = msgpack_as<std::string>(*f[1]);
        a.room = msgpack_as<std::string>(*f[2]);
        a.exists = msgpack_as<bool>(*f[3]);
        const MsgpackNode* at = f[4] + 1;
        for (std::uint32_t i = 0; i < f[4]->size / 3; ++i) {
          AudienceMember m;
          m.user = msgpack_as<std::string>(*at);
          at = at->next();
          m.level = msgpack_as<std::uint8_t>(*at);
          at = at->next();
          m.read = msgpack_as<std::uint64_t>(*at);
          at = at->next();
          a.members.push_back(std::move(m));
        }
        return Frame{std::move(a)};
      }
      default:
        return std::nullopt;
    }
  } catch (const msgpack::type_error&) {
    return std::nullopt;
  }
}

std::string id_escape(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (unsigned char ch : text) {
    if (std::isalnum(ch) || ch == '-' || ch == '.' || ch == '_' || ch == '~') {
      out.push_back(static_cast<char>(ch));
    } else {
      out.push_back('%');
      out.push_back(kHex[ch >> 4]);
      out.push_back(kHex[ch & 15]);
    }
  }
  return out;
}

bool covers(const std::vector<std::string>& rooms, bool messages, bool events, std::string_view name) {
  return (is_events_room(name) ? events : messages) && room_matches(rooms, std::string(room_of_events(name)));
}

std::string cursor_key(std::string_view webhook) {
  std::string key("\x01webhook:");
  key.append(webhook);
  return key;
}

}  // namespace switchboard::actors::webhook
