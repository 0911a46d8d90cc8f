#include "switchboard/transport/socket.hpp"

#include <algorithm>
#include <cerrno>

namespace switchboard::transport {

void configure_outside(zmq::socket_t& socket, const Limits& limits) {
  socket.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(limits.max_socket_message));
  socket.set(zmq::sockopt::linger, 1000);
  socket.set(zmq::sockopt::reconnect_ivl, 100);
  socket.set(zmq::sockopt::reconnect_ivl_max, 5000);
  socket.set(zmq::sockopt::heartbeat_ivl, 5000);
  socket.set(zmq::sockopt::heartbeat_timeout, 15000);
  socket.set(zmq::sockopt::heartbeat_ttl, 15000);
}

void configure_peer_link(zmq::socket_t& socket, const Limits& limits) {
  // What comes back are replies relayed to clients, as large as a node's replies get
  // (a page of history): the clients' own cap (client/client.cpp), not a request's.
  socket.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(std::max<std::size_t>(64u << 20, limits.max_socket_message)));
  socket.set(zmq::sockopt::immediate, 1);
  // A peer that was down (or not started yet) is tried again within a quarter of a
  // second, not after a backoff of seconds: until then its rooms are `unavailable`.
  socket.set(zmq::sockopt::reconnect_ivl_max, 250);
  socket.set(zmq::sockopt::sndhwm, static_cast<int>(limits.reply_hwm));
  socket.set(zmq::sockopt::rcvhwm, 0);  // replies to what this side sent: bounded by it
  // A little time at close for what was sent last (a stopping node's goodbye); with
  // ZMQ_IMMEDIATE nothing is queued for a peer that is not connected.
  socket.set(zmq::sockopt::linger, 200);
  socket.set(zmq::sockopt::heartbeat_ivl, 1000);
  socket.set(zmq::sockopt::heartbeat_timeout, 3000);
  socket.set(zmq::sockopt::heartbeat_ttl, 3000);
}

BindError::BindError(std::string endpoint, int error)
    : zmq::error_t(error), endpoint_(std::move(endpoint)), what_("cannot bind " + endpoint_ + ": " + zmq::error_t::what()) {}

std::string bind_resolved(zmq::socket_t& socket, const std::string& endpoint) {
  if (zmq_bind(socket.handle(), endpoint.c_str()) != 0) throw BindError(endpoint, zmq_errno());
  return socket.get(zmq::sockopt::last_endpoint);
}

int poll(zmq::pollitem_t* items, std::size_t count, std::chrono::milliseconds timeout) {
  const int ready = zmq_poll(items, static_cast<int>(count), static_cast<long>(timeout.count()));
  if (ready >= 0) return ready;
  if (zmq_errno() == EINTR) return 0;
  throw zmq::error_t();
}

bool recv_multipart_nowait(zmq::socket_t& socket, std::vector<zmq::message_t>& parts) {
  parts.clear();
  zmq::message_t first;
  if (!socket.recv(first, zmq::recv_flags::dontwait)) return false;
  bool more = first.more();
  parts.push_back(std::move(first));
  while (more) {
    zmq::message_t part;
    (void)socket.recv(part, zmq::recv_flags::none);  // the rest of a message is already here
    more = part.more();
    parts.push_back(std::move(part));
  }
  return true;
}

}  // namespace switchboard::transport
