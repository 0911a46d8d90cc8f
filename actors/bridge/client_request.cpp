#include "switchboard/actors/bridge/client_request.hpp"

#include <array>

#include "switchboard/actors/bridge/json_codec.hpp"
#include "switchboard/common/utf8.hpp"

namespace switchboard::actors::bridge {

std::variant<ClientFrame, FrameError> read_client_frame(bool binary, std::string_view data,
                                                        const transport::Limits& limits, std::string& scratch) {
  Result<MsgpackReader> map = make_error(errc::internal, "");
  if (binary) {
    map = transport::unpack_map(data, limits);
    if (!map)
      return FrameError{0, std::string(errc_name(map.error().code)), map.error().message, "not one msgpack map"};
  } else {
    map = json_object(data, limits.max_depth, scratch);
    if (!map && map.error().code == errc::too_large)
      return FrameError{0, "too_large", map.error().message, "nesting too deep"};
    if (!map) return FrameError{0, "bad_frame", "a text frame holds one JSON object", "not one JSON object"};
  }
  const MsgpackNode* id = transport::FieldReader(map->root()).find("id");
  if (id == nullptr || !id->is(MsgpackType::positive_integer))
    return FrameError{0, "bad_field", "field 'id' must be an unsigned integer"};
  return ClientFrame{std::move(*map), id->via.u64};
}

namespace {

using transport::FieldReader;
using transport::Limits;

template <class Body>
Result<NodeRequest> done(FieldReader& f, Body body) {
  if (!f.ok()) return f.error();
  if constexpr (std::is_constructible_v<transport::RequestBody, Body>)
    return NodeRequest(std::in_place_index<0>, std::move(body));
  else
    return NodeRequest(std::in_place_index<1>, std::move(body));
}

// One reader per op: the fields the client gives, read as transport::decode_request and
// decode_presence_request read them (same order, limits and messages); the connection's
// user and session where the node's request has them.

Result<NodeRequest> create_room(FieldReader& f, const Limits& l, const Caller& c) {
  transport::CreateRoom r{{}, std::string(c.user)};
  f.name("room", r.room, l.max_room);
  if (f.find("private")) f.boolean("private", r.private_room);
  return done(f, std::move(r));
}
Result<NodeRequest> join(FieldReader& f, const Limits& l, const Caller& c) {
  transport::Join r{{}, std::string(c.user)};
  f.name("room", r.room, l.max_room);
  return done(f, std::move(r));
}
Result<NodeRequest> leave(FieldReader& f, const Limits& l, const Caller& c) {
  transport::Leave r{{}, std::string(c.user)};
  f.name("room", r.room, l.max_room);
  return done(f, std::move(r));
}
Result<NodeRequest> add_member(FieldReader& f, const Limits& l, const Caller&) {
  transport::AddMember r;
  f.name("room", r.room, l.max_room) && f.name("user", r.user, l.max_user);
  if (f.find("role")) transport::read_role(f, r.role);
  return done(f, std::move(r));
}
Result<NodeRequest> remove_member(FieldReader& f, const Limits& l, const Caller&) {
  transport::RemoveMember r;
  f.name("room", r.room, l.max_room) && f.name("user", r.user, l.max_user);
  return done(f, std::move(r));
}
Result<NodeRequest> ban(FieldReader& f, const Limits& l, const Caller&) {
  transport::Ban r;
  f.name("room", r.room, l.max_room) && f.name("user", r.user, l.max_user);
  return done(f, std::move(r));
}
Result<NodeRequest> unban(FieldReader& f, const Limits& l, const Caller&) {
  transport::Unban r;
  f.name("room", r.room, l.max_room) && f.name("user", r.user, l.max_user);
  return done(f, std::move(r));
}
Result<NodeRequest> set_role(FieldReader& f, const Limits& l, const Caller&) {
  transport::SetRole r;
  f.name("room", r.room, l.max_room) && f.name("user", r.user, l.max_user);
  transport::read_role(f, r.role);
  return done(f, std::move(r));
}
Result<NodeRequest> delete_room(FieldReader& f, const Limits& l, const Caller&) {
  transport::DeleteRoom r;
  f.name("room", r.room, l.max_room);
  return done(f, std::move(r));
}
Result<NodeRequest> set_receipts(FieldReader& f, const Limits& l, const Caller&) {
  transport::SetReceipts r;
  f.name("room", r.room, l.max_room) && f.boolean("receipts", r.receipts);
  return done(f, std::move(r));
}
Result<NodeRequest> set_retention(FieldReader& f, const Limits& l, const Caller&) {
  transport::SetRetention r;
  f.name("room", r.room, l.max_room) && f.opt_u64("max_age_s", r.max_age_s) && f.opt_u64("max_messages", r.max_messages);
  if (f.ok() && f.find("legal_hold")) {  // the node refuses it from a user: said by the node, as for any client
    bool hold = false;
    f.boolean("legal_hold", hold);
    r.legal_hold = hold;
  }
  return done(f, std::move(r));
}
Result<NodeRequest> read_markers(FieldReader& f, const Limits& l, const Caller&) {
  transport::ReadMarkers r;
  f.name("room", r.room, l.max_room);
  return done(f, std::move(r));
}
Result<NodeRequest> members(FieldReader& f, const Limits& l, const Caller&) {
  transport::Members r;
  f.name("room", r.room, l.max_room);
  return done(f, std::move(r));
}
Result<NodeRequest> rooms(FieldReader& f, const Limits& l, const Caller& c) {
  // `mine`: a boolean, anything else is its default (false).
  const MsgpackNode* mine = f.find("mine");
  transport::ListRooms r;
  if (mine && mine->is(MsgpackType::boolean) && mine->via.boolean) r.user = std::string(c.user);
  transport::read_summary_page(f, r, l);
  return done(f, std::move(r));
}
Result<NodeRequest> publish(FieldReader& f, const Limits& l, const Caller& c) {
  transport::Publish r;
  r.user = c.user;
  f.name("room", r.room, l.max_room) && f.text("cmid", r.client_msg_id, l.max_client_msg_id) &&
      transport::read_publish_kind(f, r);
  if (f.ok() && (r.kind == EntryKind::message || r.kind == EntryKind::edit))
    f.text("body", r.body, l.max_body) && transport::read_mentions(f, r.mentions, l.max_mentions, l);
  if (f.ok() && r.client_msg_id.empty()) f.fail(errc::bad_field, "field 'cmid' must not be empty");
  return done(f, std::move(r));
}
Result<NodeRequest> history(FieldReader& f, const Limits& l, const Caller&) {
  transport::History r;
  transport::read_history_request(f, r, l);
  return done(f, std::move(r));
}
Result<NodeRequest> mark_read(FieldReader& f, const Limits& l, const Caller& c) {
  transport::MarkRead r;
  r.user = c.user;
  f.name("room", r.room, l.max_room) && f.u64("seq", r.seq);
  return done(f, std::move(r));
}
Result<NodeRequest> kick(FieldReader& f, const Limits& l, const Caller&) {
  transport::Kick r;
  f.name("room", r.room, l.max_room) && f.name("user", r.user, l.max_user);
  return done(f, std::move(r));
}
Result<NodeRequest> set_notify(FieldReader& f, const Limits& l, const Caller& c) {
  transport::SetNotify r;
  r.user = c.user;
  std::string level;
  if (f.name("room", r.room, l.max_room) && f.text("level", level, 16)) {
    if (auto v = transport::notify_level_from_name(level)) r.level = *v;
    else f.fail(errc::bad_field, "field 'level' must be 'all', 'mentions', 'none' or 'default'");
  }
  return done(f, std::move(r));
}
Result<NodeRequest> last_seq(FieldReader& f, const Limits& l, const Caller&) {
  transport::LastSeq r;
  f.name("room", r.room, l.max_room);
  return done(f, std::move(r));
}
Result<NodeRequest> who(FieldReader& f, const Limits& l, const Caller&) {
  transport::Who r;
  f.name("room", r.room, l.max_room);
  return done(f, std::move(r));
}
Result<NodeRequest> status(FieldReader& f, const Limits& l, const Caller&) {
  transport::UserStatus r;
  f.name("user", r.user, l.max_user);
  return done(f, std::move(r));
}
Result<NodeRequest> typing(FieldReader& f, const Limits& l, const Caller& c) {
  transport::Typing r{std::string(c.session), {}};
  f.name("room", r.room, l.max_room);
  return done(f, std::move(r));
}
Result<NodeRequest> set_status(FieldReader& f, const Limits& l, const Caller& c) {
  transport::SetStatus r;
  r.session = c.session;
  transport::read_availability(f, "status", r.status) && f.text("text", r.text, l.max_status_text);
  return done(f, std::move(r));
}

using H = ClientOp::Handler;
using R = ClientOp::Rate;
// clang-format off
constexpr std::array<ClientOp, 28> kOps = {{
    {"auth",          H::auth},
    {"ping",          H::ping},
    {"subscribe",     H::subscribe},
    {"unsubscribe",   H::unsubscribe},
    {"create_room",   H::chat,     R::none,    false, create_room},
    {"join",          H::chat,     R::none,    false, join},
    {"leave",         H::chat,     R::none,    false, leave},
    {"add_member",    H::chat,     R::none,    false, add_member},
    {"remove_member", H::chat,     R::none,    false, remove_member},
    {"ban",           H::chat,     R::none,    false, ban},
    {"unban",         H::chat,     R::none,    false, unban},
    {"kick",          H::chat,     R::none,    false, kick},
    {"set_role",      H::chat,     R::none,    false, set_role},
    {"delete_room",   H::chat,     R::none,    false, delete_room},
    {"members",       H::chat,     R::none,    false, members},
    {"rooms",         H::chat,     R::none,    false, rooms},
    {"publish",       H::chat,     R::publish, false, publish},
    {"history",       H::chat,     R::none,    false, history},
    {"last_seq",      H::chat,     R::none,    false, last_seq},
    {"mark_read",     H::chat,     R::none,    false, mark_read},
    {"set_receipts",  H::chat,     R::none,    false, set_receipts},
    {"set_notify",    H::chat,     R::none,    false, set_notify},
    {"set_retention", H::chat,     R::none,    false, set_retention},
    {"read_markers",  H::chat,     R::none,    false, read_markers},
    {"who",           H::presence, R::none,    false, who},
    {"status",        H::presence, R::none,    false, status},
    {"typing",        H::presence, R::typing,  true,  typing},
    {"set_status",    H::presence, R::none,    true,  set_status},
}};
// clang-format on

}  // namespace

const ClientOp* find_client_op(std::string_view name) noexcept {
  for (const ClientOp& op : kOps)
    if (op.name == name) return &op;
  return nullptr;
}

}  // namespace switchboard::actors::bridge
