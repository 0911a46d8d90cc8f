// switchboard::client::PresenceClient: a user's presence on a node.
//
// open() starts a session; from then on a background thread heartbeats it on its own
// socket, and opens it again by itself if the node forgot it (unknown_session: the
// node restarted, or the session expired while the process was stopped). close() is a
// clean leave; so is destroying the object. who/status/set_status/typing and the
// event subscription use the calling thread, like Client.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include <zmq.hpp>

#include "switchboard/client/client.hpp"
#include "switchboard/transport/presence_messages.hpp"

namespace switchboard::client {

struct PresenceEndpoints {
  std::string requests;  ///< the presence actor's endpoint
  std::string events;    ///< the presence PUB
};

class PresenceClient {
 public:
  /// Asks the node `client` talks to where its presence actor is (hello).
  static Result<std::unique_ptr<PresenceClient>> connect(Client& client, const ClientOptions& options);
  PresenceClient(PresenceEndpoints endpoints, const ClientOptions& options);
  /// close(), with one attempt only: a node that is gone does not hold the caller up.
  ~PresenceClient();
  PresenceClient(const PresenceClient&) = delete;
  PresenceClient& operator=(const PresenceClient&) = delete;

  /// Opens a session of `user` (one per PresenceClient) and starts heartbeating it.
  Result<void> open(const std::string& user);
  /// Ends the session at once: others see the user go offline unless another session
  /// of theirs lives. Idempotent.
  Result<void> close() { return close(options_.max_attempts); }
  const std::string& session() const noexcept { return session_; }
  /// Heartbeats sent and sessions re-opened by the background thread so far.
  std::uint64_t heartbeats() const noexcept { return heartbeats_.load(); }
  std::uint64_t reopened() const noexcept { return reopened_.load(); }

  Result<transport::WhoOk> who(const std::string& room);
  /// `user`'s presence; for an offline user, `last_seen` when the node knows it (a node
  /// of an earlier version never sends it).
  Result<transport::UserStatusOk> status(const std::string& user);
  Result<void> set_status(transport::Availability status, const std::string& text);
  Result<void> typing(const std::string& room);

  /// Presence events of `room` from now on (online, offline, join, leave, status, typing).
  Result<void> follow(const std::string& room);
  /// The next event of a followed room, or nullopt if none came within `timeout`.
  std::optional<transport::PresenceEvent> next_event(Millis timeout);

 private:
  void keep_alive();
  Result<void> close(int attempts);

  PresenceEndpoints endpoints_;
  ClientOptions options_;
  std::unique_ptr<zmq::context_t> own_context_;
  zmq::context_t* context_;
  zmq::socket_t req_;
  std::optional<zmq::socket_t> sub_;
  std::uint64_t next_id_ = 1;
  std::string user_, session_;
  std::chrono::milliseconds heartbeat_{5000};
  std::thread keeper_;
  std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::atomic<std::uint64_t> heartbeats_{0}, reopened_{0};
};

/// Of the endpoints a node offers, the one to use from a client that reached the node
/// at `used`: same transport; a wildcard tcp host replaced by the host used.
std::optional<std::string> pick_endpoint(const std::string& used, const std::vector<std::string>& offered);

}  // namespace switchboard::client
