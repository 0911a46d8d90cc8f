// A TCP forwarder on loopback that stands in for a network link between two nodes,
// and can break it on demand without root: the chaos harness puts one in front of
// every endpoint one node uses to reach another (docs/RELIABILITY.md).
//
// Modes:
//   pass   bytes go through as they come;
//   slow   each chunk waits `delay` before it goes on (a congested or distant link);
//   hold   nothing goes through, nothing is lost: bytes wait, as TCP's do while a
//          route is gone, until the mode changes (a partition that heals);
//   cut    every connection is closed at once and new ones are closed as soon as
//          they are accepted, until the mode changes (a link that drops).
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

namespace switchboard::testing {

class LinkProxy {
 public:
  enum class Mode { pass, slow, hold, cut };

  /// Listens on 127.0.0.1:`listen_port` and forwards every connection to
  /// 127.0.0.1:`target_port` (connecting when the connection is accepted). Throws
  /// std::system_error if it cannot listen.
  LinkProxy(int listen_port, int target_port);
  ~LinkProxy();
  LinkProxy(const LinkProxy&) = delete;
  LinkProxy& operator=(const LinkProxy&) = delete;

  void set_mode(Mode mode, std::chrono::milliseconds delay = std::chrono::milliseconds(0));
  Mode mode() const noexcept { return mode_.load(); }
  int listen_port() const noexcept { return listen_port_; }
  /// Connections accepted so far (cut ones too).
  std::uint64_t accepted() const noexcept { return accepted_.load(); }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int listen_port_;
  std::atomic<Mode> mode_{Mode::pass};
  std::atomic<std::int64_t> delay_ms_{0};
  std::atomic<std::uint64_t> accepted_{0};
  std::atomic<std::uint64_t> epoch_{0};  ///< bumped by each cut: older connections close
  std::thread thread_;
};

}  // namespace switchboard::testing
