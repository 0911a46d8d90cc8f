#include "switchboard/actors/chat/room_events.hpp"

#include "switchboard/actors/bridge/json_codec.hpp"
#include "switchboard/common/overloaded.hpp"
#include "switchboard/transport/codec.hpp"

namespace switchboard::actors {
namespace {

using bridge::JsonWriter;

// What every event ends with: who made it (absent: a service acting for the node), when,
// and where it stands among the room's messages.
void close_event(JsonWriter& w, const std::optional<std::string>& as, std::uint64_t ts_ms, std::uint64_t after_seq) {
  if (as) w.str("by", *as);
  w.u64("ts", ts_ms).u64("after_seq", after_seq).end_object();
}

std::string membership(std::string_view event, const std::string& room, const std::string& user,
                     std::optional<Role> role, const std::optional<std::string>& as, std::uint64_t ts_ms,
                     std::uint64_t after_seq) {
  JsonWriter w(160 + room.size() + user.size());
  w.begin_object().str("type", "membership").str("event", event).str("room", room).str("user", user);
  if (role) w.str("role", role_name(*role));
  close_event(w, as, ts_ms, after_seq);
  return w.take();
}

JsonWriter room_event(std::string_view event, const std::string& room) {
  JsonWriter w(160 + room.size());
  w.begin_object().str("type", "room").str("event", event).str("room", room);
  return w;
}

template <class T>
const T* first(std::span<const persistence::Record> records) {
  for (const auto& r : records)
    if (const auto* t = std::get_if<T>(&r)) return t;
  return nullptr;
}

}  // namespace

std::vector<std::string> room_events(const transport::RequestBody& request, const std::optional<std::string>& as,
                                   std::span<const persistence::Record> records, std::uint64_t ts_ms,
                                   std::uint64_t after_seq) {
  std::vector<std::string> out;
  if (records.empty()) return out;
  auto member = [&](std::string_view event, const std::string& room, const std::string& user,
                    std::optional<Role> role = std::nullopt) {
    out.push_back(membership(event, room, user, role, as, ts_ms, after_seq));
  };
  auto setting = [&](JsonWriter w) {
    close_event(w, as, ts_ms, after_seq);
    out.push_back(w.take());
  };
  std::visit(Overloaded{
                 [&](const transport::CreateRoom& r) {
                   const auto* created = first<persistence::CreateRoom>(records);
                   if (!created) return;
                   setting(std::move(room_event("created", r.room).boolean("private", created->private_room)));
                   member("joined", r.room, r.user, Role::owner);
                 },
                 [&](const transport::Join& r) {
                   if (const auto* added = first<persistence::AddMember>(records)) member("joined", r.room, r.user, added->role);
                 },
                 [&](const transport::Leave& r) { member("left", r.room, r.user); },
                 [&](const transport::AddMember& r) {
                   if (const auto* added = first<persistence::AddMember>(records)) member("added", r.room, r.user, added->role);
                 },
                 [&](const transport::RemoveMember& r) {
                   const auto* removed = first<persistence::RemoveMember>(records);
                   if (removed) member(removed->remember ? "removed" : "left", r.room, r.user);
                 },
                 [&](const transport::Kick& r) { member("kicked", r.room, r.user); },
                 [&](const transport::Ban& r) { member("banned", r.room, r.user); },
                 [&](const transport::Unban& r) { member("unbanned", r.room, r.user); },
                 [&](const transport::SetRole& r) { member("role", r.room, r.user, r.role); },
                 [&](const transport::DeleteRoom& r) { setting(room_event("deleted", r.room)); },
                 [&](const transport::SetReceipts& r) {
                   setting(std::move(room_event("receipts", r.room).boolean("receipts", r.receipts)));
                 },
                 [&](const transport::SetRetention& r) {
                   const auto* set = first<persistence::SetRetention>(records);
                   if (!set) return;
                   setting(std::move(room_event("retention", r.room)
                                         .u64("max_age_s", set->retention.max_age_ms / 1000)
                                         .u64("max_messages", set->retention.max_messages)
                                         .boolean("legal_hold", set->retention.legal_hold)));
                 },
                 [](const auto&) {},
             },
             request);
  return out;
}

std::string_view room_event_type(std::string_view json) noexcept {
  if (json.starts_with(R"({"type":"membership")")) return "membership";
  if (json.starts_with(R"({"type":"room")")) return "room";
  return {};
}

}  // namespace switchboard::actors

namespace switchboard::actors {

std::string room_event_user(std::string_view json) {
  if (room_event_type(json) != "membership") return {};
  std::string scratch;
  auto map = bridge::json_object(json, 4, scratch);
  if (!map) return {};
  transport::FieldReader fields(map->root());
  std::string_view user;
  return fields.text("user", user, json.size()) ? std::string(user) : std::string();
}

}  // namespace switchboard::actors
