// A ZeroMQ socket watched from a Boost.Asio io_context, so that one thread serves
// HTTP or WebSocket connections and the node's sockets together (the WebSocket
// bridge, the HTTP API).
//
// Internal to the library; it includes Boost.
#pragma once

#include <functional>

#include <boost/asio.hpp>
#include <zmq.hpp>

namespace switchboard::actors::net {

/// Watches a ZeroMQ socket from the io_context. ZMQ_FD is edge-triggered: after every
/// wake-up, and after every send on the socket (which may consume the edge), the
/// socket is read while ZMQ_EVENTS says POLLIN, and only then waited on again. Call
/// poke() after every send.
class ZmqWatch {
 public:
  ZmqWatch(boost::asio::io_context& ioc, zmq::socket_t& socket, std::function<void()> read_one)
      : ioc_(ioc), socket_(socket), fd_(ioc, socket.get(zmq::sockopt::fd)), read_one_(std::move(read_one)) {}
  ~ZmqWatch() { fd_.release(); }  // the descriptor is ZeroMQ's to close
  ZmqWatch(const ZmqWatch&) = delete;
  ZmqWatch& operator=(const ZmqWatch&) = delete;

  void start() { drain(); }
  void poke() {
    if (poked_) return;
    poked_ = true;
    boost::asio::post(ioc_, [this] {
      poked_ = false;
      drain();
    });
  }

 private:
  void drain() {
    // A bounded batch, so that connections get their turn in a burst.
    for (int i = 0; i < 512; ++i) {
      if (!(socket_.get(zmq::sockopt::events) & ZMQ_POLLIN)) return arm();
      read_one_();
    }
    poke();
  }
  void arm() {
    if (armed_) return;
    armed_ = true;
    fd_.async_wait(boost::asio::posix::descriptor_base::wait_read, [this](boost::system::error_code ec) {
      armed_ = false;
      if (!ec) drain();
    });
  }

  boost::asio::io_context& ioc_;
  zmq::socket_t& socket_;
  boost::asio::posix::stream_descriptor fd_;
  std::function<void()> read_one_;
  bool armed_ = false, poked_ = false;
};

}  // namespace switchboard::actors::net
