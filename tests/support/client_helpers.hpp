// Helpers for tests that drive a node through the client library.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "switchboard/client/client.hpp"
#include "switchboard/client/presence.hpp"
#include "node_process.hpp"

namespace switchboard::testing {

/// Options for a client of `node`: its client endpoint, and CURVE with the keys the
/// node made in its data directory (none if it runs with CURVE off).
inline client::ClientOptions options_for(const NodeProcess& node) {
  client::ClientOptions o;
  o.endpoint = node.client_endpoint();
  o.attempt_timeout *= kSlowdown;
  if (node.curve_public() != "off") {
    auto keys = client::load_local_keys(node.keys_dir());
    EXPECT_TRUE(keys) << keys.error().message;
    if (keys) o.curve = std::move(*keys);
  }
  return o;
}

/// Waits for `user`'s presence event of `kind` on a followed room; nullopt if none
/// came within `timeout`.
inline std::optional<transport::PresenceEvent> wait_event(client::PresenceClient& p, const std::string& user,
                                                          transport::PresenceEvent::Kind kind, client::Millis timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (auto now = std::chrono::steady_clock::now(); now < deadline; now = std::chrono::steady_clock::now()) {
    auto e = p.next_event(std::chrono::ceil<client::Millis>(deadline - now));
    if (e && e->user == user && e->kind == kind) return e;
  }
  return std::nullopt;
}

/// Makes `request` again while it is answered `unavailable` (links between the nodes,
/// or to a service, not up yet; a breaker not open or closed yet), for at most 20 s;
/// returns the last answer. A request that may be stored is sent with a fixed client
/// message id, so that its repeats are stored once.
template <class Request>
auto while_unavailable(Request request) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  auto answer = request();
  while (!answer && answer.error().code == errc::unavailable && std::chrono::steady_clock::now() < deadline)
    answer = request();
  return answer;
}

/// Every message of `room`, in seq order, read through `c` in pages of 1000 (each page
/// asked again while it is `unavailable`).
inline std::vector<transport::RoomMessage> whole_history(client::Client& c, const std::string& room) {
  std::vector<transport::RoomMessage> out;
  std::uint64_t after = 0;
  for (;;) {
    auto page = while_unavailable([&] { return c.history(room, client::HistoryQuery{1000, std::nullopt, after}); });
    EXPECT_TRUE(page) << page.error().message;
    if (!page) return out;
    for (auto& m : page->messages) out.push_back(std::move(m));
    if (!page->more || page->messages.empty()) return out;
    after = out.back().seq;
  }
}

/// Reads a subscription until `count` messages arrived (or `patience` passed). With
/// `while_owner_down`, `unavailable` (the room's owner node is down: the subscription
/// stays) is waited out instead of failing the test.
inline std::vector<transport::RoomMessage> receive(client::Client& c, std::size_t count,
                                                   bool while_owner_down = false,
                                                   std::chrono::seconds patience = std::chrono::seconds(60)) {
  std::vector<transport::RoomMessage> got;
  auto deadline = std::chrono::steady_clock::now() + patience;
  while (got.size() < count && std::chrono::steady_clock::now() < deadline) {
    auto m = c.next(client::Millis(500));
    if (!m && while_owner_down && m.error().code == errc::unavailable) continue;
    EXPECT_TRUE(m) << m.error().message;
    if (!m) break;
    if (*m) got.push_back(std::move(**m));
  }
  return got;
}

/// Publishes `body` + i (i = 0, 1, ...) to `room` as `user`, at most `count` times,
/// until one is refused; the seqs acked go to `acked`. Returns the refusal (code ok if
/// none was refused).
inline Error publish_until_refused(client::Client& c, const std::string& room, const std::string& user,
                                   const std::string& body, int count, std::vector<std::uint64_t>& acked) {
  for (int i = 0; i < count; ++i) {
    auto ack = c.publish(room, user, body + std::to_string(i));
    if (!ack) return ack.error();
    acked.push_back(ack->seq);
  }
  return Error{errc::ok, {}};
}

/// The whole history of a room, paging forward.
inline std::vector<transport::RoomMessage> full_history(client::Client& c, const std::string& room) {
  std::vector<transport::RoomMessage> all;
  std::uint64_t after = 0;
  for (;;) {
    auto page = c.history(room, client::HistoryQuery{1000, std::nullopt, after});
    EXPECT_TRUE(page) << page.error().message;
    if (!page || page->messages.empty()) break;
    after = page->messages.back().seq;
    for (auto& m : page->messages) all.push_back(std::move(m));
    if (!page->more) break;
  }
  return all;
}

}  // namespace switchboard::testing
