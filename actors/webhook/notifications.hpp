// Offline notifications (docs/WEBHOOKS.md, "Notifications"): which members of a room hear
// of which of its messages, and the JSON of what a notifications webhook POSTs. No
// sockets: the webhook sender gathers the room's audience (chat) and who is online
// (presence), and this decides.
#pragma once

#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "switchboard/actors/webhook/webhook_frames.hpp"
#include "switchboard/transport/messages.hpp"

namespace switchboard::actors::webhook {

/// One member's notification for a run of a room's messages.
struct Notification {
  std::string user, room;
  /// The messages they hear of, in seq order, each with whether it mentions them.
  std::vector<const transport::RoomMessage*> messages;
  std::vector<bool> mentioned;
};

/// For `messages` of one room (in seq order), the members of `audience` who hear of
/// them: not the sender; not online (`online`); their read marker below the message;
/// their level `all`, or `mentions` and the message mentions them. One Notification per
/// member, in name order, holding every message of theirs.
std::vector<Notification> notifications_for(const std::vector<transport::RoomMessage>& messages,
                                            const Audience& audience, const std::set<std::string, std::less<>>& online);

/// Bytes of a message's body a notification carries as its preview (cut at a UTF-8
/// character's end).
inline constexpr std::size_t kPreviewBytes = 200;

/// The key of one (user, room, seq): the same whichever notification carries it, and
/// whenever (receivers drop a key they had).
std::string notification_key(std::string_view user, std::string_view room, std::uint64_t seq);
/// A notification's id: "n:", the user and the room (as event_id writes a room), and the
/// first and last seq it carries ("n:bob:general:12-14").
std::string notification_id(const Notification& n);
/// The JSON a notifications webhook POSTs for `n`.
std::string notification_json(std::string_view webhook, std::string_view node, const Notification& n);

}  // namespace switchboard::actors::webhook
