// Chat's side of webhooks (docs/WEBHOOKS.md): it tells the webhook sender of each
// batch's newest seqs (finish_batch), answers which rooms are behind a webhook's
// cursor, and stores cursors as read markers of a name no user can have.
#include <spdlog/spdlog.h>

#include "switchboard/actors/chat.hpp"
#include "switchboard/actors/grants.hpp"
#include "switchboard/actors/webhook/webhook_frames.hpp"
#include "switchboard/common/event_rooms.hpp"
#include "switchboard/common/overloaded.hpp"

namespace switchboard::actors {

bool Chat::writes_here(std::string_view room) const {
  if (!placement_) return true;
  const std::string* shard = shard_of(room);
  return shard && primary_of_shard(*shard) == options_.cluster->self;
}

void Chat::on_webhook_frame(std::string_view frame, Effects& out) {
  auto decoded = webhook::decode(frame);
  if (!decoded || options_.webhook_actor.empty()) {
    spdlog::error("chat: a frame on the internal mailbox that is not the webhook sender's");
    return;
  }
  std::visit(
      Overloaded{
          [&](const webhook::BacklogAsk& ask) {
            webhook::Backlog answer{ask.webhook, ask.room, {}, false};
            const std::string key = webhook::cursor_key(ask.webhook);
            if (!ask.room.empty()) {
              if (const Room* room = book_.find(ask.room); room && writes_here(ask.room))
                answer.rows.push_back({ask.room, RoomBook::marker(*room, key), room->durable_seq});
            } else {
              const auto& rooms = book_.rooms();
              for (auto it = rooms.upper_bound(ask.after); it != rooms.end(); ++it) {
                const auto& [name, room] = *it;
                const std::uint64_t cursor = RoomBook::marker(room, key);
                if (cursor >= room.durable_seq || !webhook::covers(ask.rooms, ask.messages, ask.events, name) || !writes_here(name)) continue;
                if (answer.rows.size() == webhook::kBacklogRows) {
                  answer.more = true;
                  break;
                }
                answer.rows.push_back({name, cursor, room.durable_seq});
              }
            }
            out.send(options_.webhook_actor, webhook::encode(answer));
          },
          [&](const webhook::Cursor& c) {
            // Moved forward only, in a room written here, to a seq that is durable; any
            // other is dropped (the sender goes on, and at worst delivers again).
            const Room* room = book_.find(c.room);
            if (stopping_ || !room || !writes_here(c.room) || c.seq > room->durable_seq) return;
            std::string key = webhook::cursor_key(c.webhook);
            if (RoomBook::marker(*room, key) >= c.seq) return;
            if (placement_ && replicas_missing(c.room)) return;
            pipeline_.enqueue(Pending{Caller{}, transport::MarkRead{c.room, std::move(key), c.seq}, kNoClaim, {}, {},
                                      std::nullopt});
          },
          [&](const webhook::AudienceAsk& ask) {
            webhook::Audience answer{ask.webhook, ask.room, false, {}};
            if (const Room* room = book_.find(ask.room)) {
              answer.exists = true;
              answer.members.reserve(room->members.size());
              for (const auto& [user, role] : room->members)
                answer.members.push_back(
                    {user,
                     static_cast<std::uint8_t>(RoomBook::effective_notify(*room, RoomBook::notify_level(*room, user))),
                     RoomBook::marker(*room, user)});
            }
            out.send(options_.webhook_actor, webhook::encode(answer));
          },
          [&](const webhook::Fetch& f) {
            // A room's events log, read as a history page for the sender's chat socket.
            const Caller caller{std::string(webhook::kSenderRoutingId), f.id};
            const Room* room = is_events_room(f.room) ? book_.find(f.room) : nullptr;
            if (!room) return reply_error(out, caller, errc::no_such_room, "no such events log");
            read_history(caller, transport::History{f.room, f.limit, std::nullopt, f.after}, *room, std::nullopt, out);
          },
          [&](const auto&) { spdlog::error("chat: a webhook frame chat does not take"); },
      },
      *decoded);
}

}  // namespace switchboard::actors
