// ZeroMQ socket setup shared by the node and the client library.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "switchboard/transport/limits.hpp"

namespace switchboard::transport {

/// Options for a socket that faces the outside (clients, other nodes): a cap on
/// message size (ZMQ_MAXMSGSIZE, see Limits::max_socket_message), bounded linger,
/// reconnect backoff, and ZMTP heartbeats so dead peers are noticed.
void configure_outside(zmq::socket_t& socket, const Limits& limits);

/// For a DEALER to a peer node, on top of configure_outside: messages are queued only
/// on a live connection (ZMQ_IMMEDIATE), so nothing is sent later to a node that was
/// declared down; the queue is bounded; at most 200 ms linger at close; and ZMTP heartbeats
/// run often, so a dead connection is dropped soon after the application notices.
void configure_peer_link(zmq::socket_t& socket, const Limits& limits);

/// A bind that failed; what() names the endpoint and the reason ("cannot bind
/// tcp://127.0.0.1:7400: Address already in use").
class BindError : public zmq::error_t {
 public:
  BindError(std::string endpoint, int error);
  const char* what() const noexcept override { return what_.c_str(); }
  const std::string& endpoint() const noexcept { return endpoint_; }

 private:
  std::string endpoint_, what_;
};

/// Binds `socket` to `endpoint` and returns the endpoint actually bound (a tcp port
/// given as "*" is resolved). Throws BindError when the bind fails.
std::string bind_resolved(zmq::socket_t& socket, const std::string& endpoint);

/// zmq_poll, with a signal (Ctrl-C) taken as the end of the wait with nothing ready:
/// EINTR is the caller's cue to look at its flags, not an error. Returns how many
/// items are ready; throws zmq::error_t on any other failure.
int poll(zmq::pollitem_t* items, std::size_t count, std::chrono::milliseconds timeout);

/// Multipart receive of everything that is waiting in one message, without blocking.
/// Returns false when nothing was waiting.
bool recv_multipart_nowait(zmq::socket_t& socket, std::vector<zmq::message_t>& parts);

inline std::string_view view(const zmq::message_t& m) {
  return {static_cast<const char*>(m.data()), m.size()};
}

}  // namespace switchboard::transport
