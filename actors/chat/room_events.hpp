// The membership and room events a change to a room makes, for the room's events log
// (common/event_rooms.hpp; docs/WEBHOOKS.md says what each event holds). Chat writes
// them in the batch of the change, so an event is stored exactly when its change is.
//
// No sockets, no clock, no store; pure.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "switchboard/persistence/history_store.hpp"
#include "switchboard/transport/messages.hpp"

namespace switchboard::actors {

/// The events of `request`, a room change made `as` that went ahead and wrote `records`
/// (none written: it changed nothing, and makes no event), at `ts_ms`, when the room's
/// last seq given out was `after_seq`. Requests that make no event (publishes,
/// mark_read, set_notify, trim_history, ...): none. Each is the event as a webhook POSTs
/// it but for the fields the sender puts in front (id, webhook, node, n): a JSON object
/// starting {"type":"membership",... or {"type":"room",... It is stored as an entry of
/// the events log with no sender.
std::vector<std::string> room_events(const transport::RequestBody& request, const std::optional<std::string>& as,
                                   std::span<const persistence::Record> records, std::uint64_t ts_ms,
                                   std::uint64_t after_seq);

/// The kind of a stored event ("membership" or "room") from its JSON; "" for another.
std::string_view room_event_type(std::string_view json) noexcept;
/// The user a stored membership event is about; "" for a room event (or another text).
std::string room_event_user(std::string_view json);

}  // namespace switchboard::actors
