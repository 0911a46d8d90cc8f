// A room's events log: the membership and room events of a room (docs/WEBHOOKS.md),
// kept as a room of their own beside it, so that they get what a room's messages get
// (gapless numbers, durable storage in the same transaction as the change they tell
// of, replication in the shard's log, copies, backups, a webhook cursor) with no new
// record type.
//
// Its name is the room's with a prefix that starts with a control character, which no
// name a client may use holds: clients can neither read nor write it, room lists never
// show it. It is placed on the shard of the room it is of (placement_name), so a change
// and its event are in one batch of one shard's log. It outlives a delete_room of its
// room (whose deletion is its last event).
#pragma once

#include <string>
#include <string_view>

namespace switchboard {

inline constexpr std::string_view kEventsRoomPrefix = "\x01" "events:";

/// The events log of `room`.
inline std::string events_room(std::string_view room) {
  std::string name(kEventsRoomPrefix);
  name.append(room);
  return name;
}
/// Whether `name` is a room's events log.
inline bool is_events_room(std::string_view name) noexcept { return name.starts_with(kEventsRoomPrefix); }
/// The room an events log is of; any other name as it is.
inline std::string_view room_of_events(std::string_view name) noexcept {
  return is_events_room(name) ? name.substr(kEventsRoomPrefix.size()) : name;
}
/// The name a room is placed on a shard by (router::RoomPlacement): its own, or for an
/// events log the room's, so both are on one shard.
inline std::string_view placement_name(std::string_view name) noexcept { return room_of_events(name); }

}  // namespace switchboard
