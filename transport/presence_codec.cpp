// The msgpack mapping of the presence protocol (transport/presence_messages.hpp).
#include <array>

#include "switchboard/common/overloaded.hpp"
#include "switchboard/common/utf8.hpp"
#include "switchboard/transport/codec.hpp"

namespace switchboard::transport {
namespace {

constexpr std::array<const char*, 3> kAvailability = {"online", "away", "busy"};
constexpr std::array<const char*, 6> kKinds = {"online", "offline", "join", "leave", "status", "typing"};

void pack_user(Packer& pk, const PresentUser& u) {
  pk.pack_map(3);
  pack_field(pk, "user", u.user);
  pack_field(pk, "status", std::string_view(availability_name(u.status)));
  pack_field(pk, "text", u.text);
}

}  // namespace

bool read_availability(FieldReader& f, std::string_view key, Availability& out) {
  std::string name;
  if (!f.text(key, name, 16)) return false;
  for (std::size_t i = 0; i < kAvailability.size(); ++i)
    if (name == kAvailability[i]) {
      out = static_cast<Availability>(i);
      return true;
    }
  return f.fail(errc::bad_field, "field '" + std::string(key) + "' must be one of online, away, busy");
}

const char* availability_name(Availability a) noexcept { return kAvailability[static_cast<std::size_t>(a)]; }
const char* event_kind_name(PresenceEvent::Kind k) noexcept { return kKinds[static_cast<std::size_t>(k)]; }

const char* op_name(const PresenceRequestBody& body) noexcept {
  static constexpr std::array<const char*, std::variant_size_v<PresenceRequestBody>> names = {
      "session_open", "heartbeat", "session_close", "set_status", "typing", "who", "status"};
  return names[body.index()];
}
const char* op_name(const PresenceReplyBody& body) noexcept {
  static constexpr std::array<const char*, std::variant_size_v<PresenceReplyBody>> names = {
      "session_open", "heartbeat", "session_close", "set_status", "typing", "who", "status", "error"};
  return names[body.index()];
}

DecodedPresenceRequest decode_presence_request(std::string_view frame, const Limits& limits) {
  auto handle = unpack_map(frame, limits);
  if (!handle) return {0, handle.error()};
  FieldReader f(handle->root());
  std::uint64_t id = 0;
  if (!f.u64("id", id)) return {0, f.error()};
  auto op = read_envelope(f);
  if (!op) return {id, op.error()};
  std::optional<std::string> as;
  read_as(f, as, limits);
  auto done = [&](PresenceRequestBody body) -> DecodedPresenceRequest {
    if (!f.ok()) return {id, f.error()};
    return {id, std::move(body), std::move(as)};
  };
  const std::string& name = *op;
  if (name == "session_open") {
    SessionOpen r;
    f.name("session", r.session, limits.max_session) && f.name("user", r.user, limits.max_user);
    return done(std::move(r));
  }
  if (name == "heartbeat") { Heartbeat r; f.name("session", r.session, limits.max_session); return done(std::move(r)); }
  if (name == "session_close") {
    SessionClose r;
    f.name("session", r.session, limits.max_session);
    return done(std::move(r));
  }
  if (name == "set_status") {
    SetStatus r;
    f.name("session", r.session, limits.max_session) && read_availability(f, "status", r.status) &&
        f.text("text", r.text, limits.max_status_text);
    return done(std::move(r));
  }
  if (name == "typing") {
    Typing r;
    f.name("session", r.session, limits.max_session) && f.name("room", r.room, limits.max_room);
    return done(std::move(r));
  }
  if (name == "who") { Who r; f.name("room", r.room, limits.max_room); return done(std::move(r)); }
  if (name == "status") { UserStatus r; f.name("user", r.user, limits.max_user); return done(std::move(r)); }
  return {id, make_error(errc::unknown_op, "unknown presence op '" + name + "'")};
}

std::string encode_presence_request(const PresenceRequest& request) {
  FrameBuffer buffer(128);
  Packer pk(buffer);
  const char* op = op_name(request.body);
  auto header = [&](std::uint32_t fields) {  // with `as` when the request has one
    pack_header(pk, fields + (request.as ? 1 : 0), op, request.id);
    if (request.as) pack_field(pk, "as", *request.as);
  };
  std::visit(Overloaded{
                 [&](const SessionOpen& r) {
                   header(2);
                   pack_field(pk, "session", r.session);
                   pack_field(pk, "user", r.user);
                 },
                 [&](const Heartbeat& r) { header(1); pack_field(pk, "session", r.session); },
                 [&](const SessionClose& r) {
                   header(1);
                   pack_field(pk, "session", r.session);
                 },
                 [&](const SetStatus& r) {
                   header(3);
                   pack_field(pk, "session", r.session);
                   pack_field(pk, "status", std::string_view(availability_name(r.status)));
                   pack_field(pk, "text", r.text);
                 },
                 [&](const Typing& r) {
                   header(2);
                   pack_field(pk, "session", r.session);
                   pack_field(pk, "room", r.room);
                 },
                 [&](const Who& r) { header(1); pack_field(pk, "room", r.room); },
                 [&](const UserStatus& r) { header(1); pack_field(pk, "user", r.user); },
             },
             request.body);
  return std::move(buffer.bytes);
}

std::string encode_presence_reply(const PresenceReply& reply) {
  FrameBuffer buffer(128);
  Packer pk(buffer);
  const char* op = op_name(reply.body);
  std::visit(Overloaded{
                 [&](const SessionOpenOk& r) {
                   pack_header(pk, 3, op, reply.id);
                   pack_field(pk, "session", r.session);
                   pack_field(pk, "heartbeat_ms", r.heartbeat_ms);
                   pack_field(pk, "ttl_ms", r.ttl_ms);
                 },
                 [&](const WhoOk& r) {
                   pack_header(pk, 4, op, reply.id);
                   pack_field(pk, "room", r.room);
                   pack_field(pk, "version", r.version);
                   pk.pack(std::string_view("users"));
                   pk.pack_array(static_cast<std::uint32_t>(r.users.size()));
                   for (const auto& u : r.users) pack_user(pk, u);
                   pack_field(pk, "typing", r.typing);
                 },
                 [&](const UserStatusOk& r) {
                   pack_header(pk, r.last_seen ? 5 : 4, op, reply.id);
                   pack_field(pk, "user", r.user);
                   pack_field(pk, "online", r.online);
                   pack_field(pk, "status", std::string_view(availability_name(r.status)));
                   pack_field(pk, "text", r.text);
                   if (r.last_seen) pack_field(pk, "last_seen", *r.last_seen);
                 },
                 [&](const ErrorReply& r) {
                   pack_header(pk, kErrorFields, op, reply.id);
                   pack_error_fields(pk, r);
                 },
                 [&](const auto&) { pack_header(pk, 0, op, reply.id); },  // the empty ones
             },
             reply.body);
  return std::move(buffer.bytes);
}

Result<PresenceReply> decode_presence_reply(std::string_view frame, const Limits& limits) {
  auto handle = unpack_map(frame, limits);
  if (!handle) return handle.error();
  FieldReader f(handle->root());
  PresenceReply reply;
  if (!f.u64("id", reply.id)) return f.error();
  auto op = read_envelope(f);
  if (!op) return op.error();
  auto done = [&](PresenceReplyBody body) -> Result<PresenceReply> {
    if (!f.ok()) return f.error();
    reply.body = std::move(body);
    return reply;
  };
  const std::string& name = *op;
  if (name == "session_open") {
    SessionOpenOk r;
    f.name("session", r.session, limits.max_session) && f.u64("heartbeat_ms", r.heartbeat_ms) &&
        f.u64("ttl_ms", r.ttl_ms);
    return done(std::move(r));
  }
  if (name == "heartbeat") return done(HeartbeatOk{});
  if (name == "session_close") return done(SessionCloseOk{});
  if (name == "set_status") return done(SetStatusOk{});
  if (name == "typing") return done(TypingOk{});
  if (name == "who") {
    WhoOk r;
    MsgpackElements items;
    if (f.name("room", r.room, limits.max_room) && f.u64("version", r.version) && f.array("users", items) &&
        f.text_array("typing", r.typing, limits.max_user)) {
      r.users.resize(items.size());
      auto item = items.begin();
      for (std::size_t i = 0; i < items.size() && f.ok(); ++i, ++item) {
        if (!item->is(MsgpackType::map)) {
          f.fail(errc::bad_field, "who users must be maps");
          break;
        }
        FieldReader uf(*item);
        if (!(uf.name("user", r.users[i].user, limits.max_user) && read_availability(uf, "status", r.users[i].status) &&
              uf.text("text", r.users[i].text, limits.max_status_text)))
          f.fail(uf.error().code, uf.error().message);
      }
    }
    return done(std::move(r));
  }
  if (name == "status") {
    UserStatusOk r;
    f.name("user", r.user, limits.max_user) && f.boolean("online", r.online) && read_availability(f, "status", r.status) &&
        f.text("text", r.text, limits.max_status_text) && f.opt_u64("last_seen", r.last_seen);  // absent: older nodes
    return done(std::move(r));
  }
  if (name == "error") return done(read_error_fields(f, limits));
  return make_error(errc::unknown_op, "unknown presence reply op '" + name + "'");
}

std::string encode_presence_event(const PresenceEvent& e) {
  FrameBuffer buffer(128);
  Packer pk(buffer);
  pk.pack_map(9);
  pack_field(pk, "v", kProtocolVersion);
  pack_field(pk, "op", std::string_view("presence"));
  pack_field(pk, "room", e.room);
  pack_field(pk, "version", e.version);
  pack_field(pk, "kind", std::string_view(event_kind_name(e.kind)));
  pack_field(pk, "user", e.user);
  pack_field(pk, "status", std::string_view(availability_name(e.status)));
  pack_field(pk, "text", e.text);
  pack_field(pk, "ttl_ms", e.ttl_ms);
  return std::move(buffer.bytes);
}

Result<PresenceEvent> decode_presence_event(std::string_view frame, const Limits& limits) {
  auto handle = unpack_map(frame, limits);
  if (!handle) return handle.error();
  FieldReader f(handle->root());
  auto op = read_envelope(f);
  if (!op) return op.error();
  if (*op != "presence") return make_error(errc::unknown_op, "unknown presence event op '" + *op + "'");
  PresenceEvent e;
  std::string kind;
  if (!(f.name("room", e.room, limits.max_room) && f.u64("version", e.version) && f.text("kind", kind, 16) &&
        f.name("user", e.user, limits.max_user) && read_availability(f, "status", e.status) &&
        f.text("text", e.text, limits.max_status_text) && f.u64("ttl_ms", e.ttl_ms)))
    return f.error();
  for (std::size_t i = 0; i < kKinds.size(); ++i)
    if (kind == kKinds[i]) {
      e.kind = static_cast<PresenceEvent::Kind>(i);
      return e;
    }
  return make_error(errc::bad_field, "unknown presence event kind '" + kind + "'");
}

}  // namespace switchboard::transport
