// The presence actor: who is online, in which rooms, with which status, and who is
// typing. Nothing of it is stored: a restarted presence actor learns sessions again
// from their next heartbeat (the client re-opens on unknown_session).
//
// Sessions heartbeat; a session not heard from for session_ttl expires. A user is
// online while any of their sessions is alive. Per room, members' online, offline,
// join, leave and status changes are published on the presence PUB (topic = room)
// with a per-room version; typing is published too, without a version step.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>

#include "switchboard/actors/actor.hpp"
#include "switchboard/persistence/history_store.hpp"
#include "switchboard/transport/limits.hpp"
#include "switchboard/transport/presence_messages.hpp"

namespace switchboard::actors {

struct PresenceOptions {
  /// Clients heartbeat this often...
  std::chrono::milliseconds heartbeat_interval{5000};
  /// ...and a session not heard from for this long is gone (3 missed heartbeats).
  std::chrono::milliseconds session_ttl{15000};
  /// A typing indicator shows for this long unless renewed.
  std::chrono::milliseconds typing_ttl{5000};
  /// One typing notice per session per this interval; more get rate_limited.
  std::chrono::milliseconds typing_min_interval{1000};
  /// Heartbeats one session may send per heartbeat_interval; more get rate_limited.
  int heartbeats_per_interval = 10;
  std::size_t max_sessions_per_user = 32;
  transport::Limits limits;
};

class Presence final : public Actor {
 public:
  /// Rooms and members from the store's snapshot; later changes come from chat.
  Presence(PresenceOptions options, const persistence::Snapshot& snapshot);

  void on_message(const Inbound& in, const Now& now, Effects& out) override;
  void on_timer(std::uint64_t id, const Now& now, Effects& out) override;

  std::size_t sessions() const noexcept { return sessions_.size(); }

 private:
  struct Session {
    std::string user;
    SteadyClock::time_point expires;
    SteadyClock::time_point window_start;  ///< heartbeat rate window
    int heartbeats_in_window = 0;
    std::optional<SteadyClock::time_point> last_typing;
  };
  struct User {
    std::set<std::string> sessions;
    transport::Availability status = transport::Availability::online;
    std::string text;
    std::set<std::string> rooms;  ///< rooms the user is a member of
  };
  struct Room {
    std::set<std::string> members;
    std::uint64_t version = 0;
    std::map<std::string, SteadyClock::time_point> typing;  ///< user -> until
  };

  transport::PresenceReplyBody handle(transport::PresenceRequestBody&& request, const Now& now, Effects& out);
  void on_membership(std::string_view frame, Effects& out);
  /// A sign of life from session `id`: it now expires one TTL from `now`.
  void touch(const std::string& id, Session& s, const Now& now);
  void end_session(const std::string& id, Effects& out);
  /// Publishes `kind` for `user` in every room they are a member of.
  void announce(const std::string& user, transport::PresenceEvent::Kind kind, Effects& out);
  void publish(Room& room, const std::string& room_name, const std::string& user, transport::PresenceEvent::Kind kind,
               Effects& out, std::uint64_t ttl_ms = 0);
  void arm(Effects& out);
  bool online(const std::string& user) const;

  PresenceOptions options_;
  std::unordered_map<std::string, Session> sessions_;
  std::map<std::string, User> users_;
  std::map<std::string, Room> rooms_;
  std::set<std::pair<SteadyClock::time_point, std::string>> expiry_;  ///< (expires, session)
  std::optional<SteadyClock::time_point> armed_;
};

}  // namespace switchboard::actors
