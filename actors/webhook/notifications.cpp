#include "switchboard/actors/webhook/notifications.hpp"

#include <algorithm>
#include <map>

#include "switchboard/actors/bridge/json_codec.hpp"
#include "switchboard/actors/webhook/webhook_sender.hpp"
#include "switchboard/common/utf8.hpp"

namespace switchboard::actors::webhook {

std::vector<Notification> notifications_for(const std::vector<transport::RoomMessage>& messages,
                                            const Audience& audience, const std::set<std::string, std::less<>>& online) {
  std::vector<Notification> out;
  if (!audience.exists || messages.empty()) return out;
  for (const auto& member : audience.members) {
    const auto level = static_cast<transport::NotifyLevel>(member.level);
    if (level == transport::NotifyLevel::none || online.count(member.user)) continue;
    Notification n{member.user, audience.room, {}, {}};
    for (const auto& m : messages) {
      // Offline members hear of messages; edits, deletes and reactions are not news to notify of.
      if (m.user == member.user || m.seq <= member.read || m.entry.kind != EntryKind::message) continue;
      const bool mentioned = std::find(m.mentions.begin(), m.mentions.end(), member.user) != m.mentions.end();
      if (level == transport::NotifyLevel::mentions && !mentioned) continue;
      n.messages.push_back(&m);
      n.mentioned.push_back(mentioned);
    }
    if (!n.messages.empty()) out.push_back(std::move(n));
  }
  return out;
}


std::string notification_key(std::string_view user, std::string_view room, std::uint64_t seq) {
  return id_escape(user) + ":" + id_escape(room) + ":" + std::to_string(seq);
}

std::string notification_id(const Notification& n) {
  return "n:" + id_escape(n.user) + ":" + id_escape(n.room) + ":" + std::to_string(n.messages.front()->seq) + "-" +
         std::to_string(n.messages.back()->seq);
}

std::string notification_json(std::string_view webhook, std::string_view node, const Notification& n) {
  bridge::JsonWriter w(256 + n.messages.size() * (kPreviewBytes + 128));
  w.begin_object()
      .str("id", notification_id(n))
      .str("type", "notification")
      .str("webhook", webhook)
      .str("node", node)
      .str("user", n.user)
      .str("room", n.room)
      .u64("count", n.messages.size())
      .boolean("mentioned", std::find(n.mentioned.begin(), n.mentioned.end(), true) != n.mentioned.end());
  w.key("messages").begin_array();
  for (std::size_t i = 0; i < n.messages.size(); ++i) {
    const auto& m = *n.messages[i];
    w.begin_object()
        .str("key", notification_key(n.user, n.room, m.seq))
        .u64("seq", m.seq)
        .str("user", m.user)
        .u64("ts", m.ts_ms)
        .str("preview", utf8_prefix(m.body, kPreviewBytes))
        .boolean("mentioned", n.mentioned[i])
        .end_object();
  }
  w.end_array().end_object();
  return w.take();
}

}  // namespace switchboard::actors::webhook
