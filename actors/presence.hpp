// The presence actor: who is online, in which rooms, with which status, who is
// typing, and when offline users were last seen. Nothing of it is stored: a restarted
// presence actor learns sessions again from their next heartbeat (the client re-opens
// on unknown_session), and last-seen times from the other nodes' snapshots, if any.
//
// Sessions heartbeat; a session not heard from for session_ttl expires. A user is
// online while any of their sessions is alive. Per room, members' online, offline,
// join, leave and status changes are published on the presence PUB (topic = room)
// with a per-room version; typing is published too, without a version step.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "switchboard/actors/actor.hpp"
#include "switchboard/router/topology.hpp"
#include "switchboard/actors/presence_sync.hpp"
#include "switchboard/persistence/history_store.hpp"
#include "switchboard/router/peers.hpp"
#include "switchboard/transport/limits.hpp"
#include "switchboard/transport/presence_messages.hpp"

namespace switchboard::actors {

struct PresenceMetrics;  // actors/metrics.hpp

/// Presence on a node of several.
struct PresenceCluster {
  std::string self;                 ///< this node's name
  std::vector<std::string> others;  ///< the other nodes
  router::PeerOptions peers;        ///< heartbeat and misses ([cluster])
  /// Chosen at random each time the node starts (Node does): tells the others that
  /// what they knew of this node is gone.
  std::uint64_t incarnation = 1;
};

/// When users were last seen: per user, the latest wall time (ms) reported for them, kept
/// in memory only. The latest wins, so reports may come in any order and from any node.
/// At most `capacity` users are kept: past it, the user seen longest ago is forgotten.
class LastSeen {
 public:
  explicit LastSeen(std::size_t capacity) : capacity_(capacity) {}
  LastSeen(const LastSeen&) = delete;  // by_time_ views seen_'s keys
  LastSeen& operator=(const LastSeen&) = delete;
  LastSeen(LastSeen&&) = default;
  LastSeen& operator=(LastSeen&&) = default;

  /// `user` was seen at `wall_ms`. A time no later than the one kept changes nothing;
  /// a new user when full forgets the one seen longest ago (or is not kept, if older).
  void record(const std::string& user, std::uint64_t wall_ms);
  /// When `user` was last seen, if kept.
  std::optional<std::uint64_t> find(const std::string& user) const;
  /// Each kept user and time, in no order. The views last until the next record().
  std::vector<std::pair<std::string_view, std::uint64_t>> entries() const;
  std::size_t size() const noexcept { return seen_.size(); }

 private:
  std::size_t capacity_;
  std::unordered_map<std::string, std::uint64_t> seen_;
  std::set<std::pair<std::uint64_t, std::string_view>> by_time_;  ///< (wall ms, user): seen longest ago first
};

/// The runtime name of a presence actor's link to another node's presence.
std::string presence_peer_actor(const std::string& node);

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
  /// Users whose last-seen time is remembered (docs/PROTOCOL.md section 7, `last_seen`);
  /// past it the user seen longest ago is forgotten. Some 150 bytes a user (more with
  /// names past 15 bytes): 1,000,000 is about 150 MB at most, and as many entries in
  /// each snapshot sent to another node.
  std::size_t max_last_seen = 1'000'000;
  transport::Limits limits;
  std::optional<PresenceCluster> cluster;
  /// Where presence counts what it does (actors/metrics.hpp); none: nothing is counted.
  /// Used on presence's thread only; must outlive the actor.
  PresenceMetrics* metrics = nullptr;
  /// Service grants, as ChatOptions::grants.
  std::map<std::string, router::Grant, std::less<>> grants;
  /// The node's webhook sender (actors/webhook/webhook_sender.hpp), told of the users'
  /// presence changes this node is the one to tell ("": no webhook takes them).
  std::string webhook_actor;
};

class Presence final : public Actor {
 public:
  /// Rooms and members from the store's snapshot; later changes come from chat.
  Presence(PresenceOptions options, const persistence::Snapshot& snapshot);

  void on_start(const std::vector<std::string>&, const std::vector<std::string>&, const Now& now,
                Effects& out) override;
  void on_message(const Inbound& in, const Now& now, Effects& out) override;
  void on_timer(std::uint64_t id, const Now& now, Effects& out) override;
  /// A node of several: tells the others this node's sessions end now.
  void on_stop(const Now& now, Effects& out) override;

  std::size_t sessions() const noexcept { return sessions_.size(); }
  /// Users whose last-seen time this node remembers (at most max_last_seen).
  std::size_t last_seen_users() const noexcept { return last_seen_.size(); }
  /// A node of several: the other nodes whose users this one knows now (up, and
  /// applied up to their latest change).
  std::vector<std::string> synced_with() const;

 private:
  static constexpr std::uint64_t kExpiryTimer = 1;
  static constexpr std::uint64_t kBeatTimer = 2;  ///< a node of several: beats to the others
  struct Session {
    std::string user;
    SteadyClock::time_point expires;
    SteadyClock::time_point window_start;  ///< heartbeat rate window
    int heartbeats_in_window = 0;
    std::optional<SteadyClock::time_point> last_typing;
    std::uint64_t heard_ms = 0;  ///< wall ms of its last sign of life: what `last_seen` shows once it ends
  };
  struct User {
    std::set<std::string> sessions;  ///< on this node
    transport::Availability status = transport::Availability::online;
    std::string text;
    std::uint64_t at_ms = 0;      ///< when this node's sessions came online or set the status
    std::set<std::string> rooms;  ///< rooms the user is a member of
    std::uint64_t heard_ms = 0;   ///< the latest heard_ms of this node's sessions that ended while others lived
  };
  struct Room {
    std::set<std::string> members;
    bool private_room = false;  ///< `who` answers its members only
    std::uint64_t version = 0;
    std::map<std::string, SteadyClock::time_point> typing;  ///< user -> until
    std::string owner;  ///< the node whose chat owns it ("" here)
  };
  /// What is shown of an online user: the latest status set on any node.
  struct Shown {
    transport::Availability status = transport::Availability::online;
    std::string text;
    friend bool operator==(const Shown&, const Shown&) = default;
  };
  /// What this node knows from another node.
  struct Origin {
    std::uint64_t incarnation = 0, seq = 0;  ///< the last change applied (0, 0: none)
    std::map<std::string, presence_sync::UserState> users;  ///< online there
    std::vector<presence_sync::SnapshotPart> staging;        ///< a snapshot's parts so far
    std::optional<SteadyClock::time_point> asked;            ///< last Resync sent
    std::pair<std::uint64_t, std::uint64_t> latest{0, 0};    ///< (incarnation, seq) of its last beat
  };

  /// `as`: the user asking (transport::PresenceRequest::as).
  transport::PresenceReplyBody handle(transport::PresenceRequestBody&& request, const std::optional<std::string>& as,
                                      const Now& now, Effects& out);
  void on_membership(std::string_view frame, Effects& out);
  /// A sign of life from session `id`: it now expires one TTL from `now`, and was last
  /// heard from at `now`.
  void touch(const std::string& id, Session& s, const Now& now);
  void end_session(const std::string& id, Effects& out);
  /// Publishes `kind` for `user` in every room they are a member of, with their
  /// status as shown now (or `as`).
  void announce(const std::string& user, transport::PresenceEvent::Kind kind, Effects& out, const Shown* as = nullptr);
  /// Runs `change` on what is known of `user` and publishes online, offline or
  /// status if that changed what others see of them.
  /// Makes `change` to `user`'s sessions or status, and announces what it changed of
  /// how they are shown. `tell`: this node is the one to tell the webhooks (the change
  /// is of its own sessions, or it tells for a node that is gone: tells_for()).
  void change_user(const std::string& user, const std::function<void()>& change, Effects& out, bool tell);
  /// Whether this node tells the webhooks of the users of `gone`, a node that stopped or
  /// is down: the first by name of the nodes up, as this node sees them.
  bool tells_for(const std::string& gone) const;
  std::optional<Shown> shown(const std::string& user) const;
  void join(Room& room, const std::string& room_name, const std::string& user, Effects& out);
  void leave(Room& room, const std::string& room_name, const std::string& user, Effects& out);

  // ---- between nodes (presence_cluster.cpp) ----
  void on_node_message(const Inbound& in, const Now& now, Effects& out);
  void heartbeat(const Now& now, Effects& out);
  /// Tells the other nodes about a change of this node's user or room members.
  void share_user(const std::string& user, Effects& out);
  void share_member(const std::string& room, const std::string& user, bool joined, bool private_room, Effects& out);
  void send_snapshot(const std::string& node, Effects& out);
  void apply_snapshot(const std::string& node, Origin& origin, const Now& now, Effects& out);
  void ask_resync(const std::string& node, Origin& origin, const Now& now, Effects& out);
  /// Applies `state` of a user from another node. A user going offline there was last
  /// seen when it says, or, if it does not say (it restarted, or is of an earlier
  /// version), at `now_ms`: their sessions there had ended by then.
  /// `tell`: as change_user's (false for what another node says of its own users: it tells).
  void set_remote_user(Origin& origin, presence_sync::UserState state, std::uint64_t now_ms, Effects& out, bool tell);
  /// `node` is down: its users are offline, last seen at `seen_ms`; what it shares must
  /// be sent again.
  void forget(const std::string& node, std::uint64_t seen_ms, Effects& out);
  void broadcast(const presence_sync::Frame& frame, Effects& out);
  void publish(Room& room, const std::string& room_name, const std::string& user, transport::PresenceEvent::Kind kind,
               Effects& out, std::uint64_t ttl_ms = 0, const Shown* as = nullptr);
  void arm(Effects& out);
  bool online(const std::string& user) const;

  PresenceOptions options_;
  std::unordered_map<std::string, Session> sessions_;
  std::map<std::string, User> users_;
  std::map<std::string, Room> rooms_;
  std::set<std::pair<SteadyClock::time_point, std::string>> expiry_;  ///< (expires, session)
  LastSeen last_seen_;  ///< of users offline on this node, and as the other nodes report them
  std::optional<SteadyClock::time_point> armed_;
  // A node of several.
  transport::Limits sync_limits_;
  std::uint64_t seq_ = 0;  ///< changes shared so far
  std::map<std::string, Origin> origins_;
  std::optional<router::PeerHealth> health_;
};

}  // namespace switchboard::actors
