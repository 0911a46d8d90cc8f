// Calls to services through chat (actors/chat_calls.cpp), as a pure handler: a
// client's `call` goes to the service's link, its answer comes back unchanged, and a
// service that is gone or slow gets the caller `unavailable`, never a hang.
#include <gtest/gtest.h>

#include "effects_helpers.hpp"
#include "switchboard/actors/chat.hpp"
#include "switchboard/router/peer_frames.hpp"
#include "switchboard/transport/codec.hpp"

using namespace switchboard;
using namespace switchboard::actors;
using namespace switchboard::transport;
using namespace std::chrono_literals;
using router::PeerKind;

namespace {

constexpr auto kTimeout = 500ms;

struct Harness {
  Harness() : chat(options(), {}) { chat.on_start({"inproc://chat"}, {"inproc://pub"}, now, fx); }

  static ChatOptions options() {
    ChatOptions o;
    o.services = {{"bot", kTimeout}, {"search", 2 * kTimeout}};
    return o;
  }

  void call(const std::string& client, std::uint64_t id, const std::string& service, const std::string& body) {
    deliver(Inbound::Via::mailbox, client, encode_request({id, Call{service, "ann", body}}));
  }
  void deliver(Inbound::Via via, const std::string& sender, const std::string& frame) {
    chat.on_message(Inbound{via, sender, {frame}}, now, fx);
    chat.on_drained(now, fx);
  }
  /// The service answers the forwarded call `corr` with `reply`.
  void service_answers(const std::string& service, std::uint64_t corr, const Reply& reply) {
    deliver(Inbound::Via::peer, service_actor(service), router::encode_peer(PeerKind::reply, corr, encode_reply(reply)));
  }
  void advance(std::chrono::milliseconds by) {
    now.steady += by;
    for (auto& t : take<Effects::Timer>()) timers.push_back(t);
    std::vector<Effects::Timer> later;
    for (auto& t : timers) {
      if (t.at <= now.steady) chat.on_timer(t.id, now, fx);
      else later.push_back(t);
    }
    timers = later;
  }

  template <class T>
  std::vector<T> take() {
    return switchboard::testing::take_effects<T>(fx);
  }
  struct Forwarded { std::string to; std::uint64_t corr; Request request; };
  std::vector<Forwarded> take_calls() {
    std::vector<Forwarded> out;
    for (auto& s : take<Effects::Send>()) {
      auto peer = router::decode_peer(s.payload);
      EXPECT_TRUE(peer && peer->kind == PeerKind::forward);
      auto request = decode_request(peer->body, Limits{});
      EXPECT_TRUE(request.body);
      out.push_back({s.actor, peer->corr, {request.id, *request.body}});
    }
    return out;
  }
  std::vector<std::pair<std::string, Reply>> take_replies() {
    std::vector<std::pair<std::string, Reply>> out;
    for (auto& r : take<Effects::Reply>()) out.emplace_back(r.to, *decode_reply(r.payload, Limits{}));
    return out;
  }

  Now now{SteadyClock::time_point{} + 1h, 1'700'000'000'000};
  Effects fx;
  std::vector<Effects::Timer> timers;
  Chat chat;
};

errc code(const Reply& r) {
  return std::holds_alternative<ErrorReply>(r.body) ? std::get<ErrorReply>(r.body).code : errc::ok;
}

}  // namespace

TEST(ChatCalls, ACallGoesToTheNamedServiceAndItsAnswerComesBackUnchanged) {
  Harness h;
  h.call("client-1", 7, "bot", "check hello");
  auto calls = h.take_calls();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].to, service_actor("bot"));
  EXPECT_EQ(calls[0].request.id, 7u);
  EXPECT_EQ(std::get<Call>(calls[0].request.body).body, "check hello");
  EXPECT_TRUE(h.take_replies().empty()) << "nothing until the service answers";

  h.service_answers("bot", calls[0].corr, Reply{7, CallOk{"bot", "ok"}});
  auto replies = h.take_replies();
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0].first, "client-1");
  EXPECT_EQ(replies[0].second.id, 7u);
  EXPECT_EQ(std::get<CallOk>(replies[0].second.body).body, "ok");

  // The service's own errors reach the caller as they are.
  h.call("client-1", 8, "bot", "nonsense");
  calls = h.take_calls();
  h.service_answers("bot", calls[0].corr, Reply{8, ErrorReply{errc::bad_field, "unknown command"}});
  replies = h.take_replies();
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(code(replies[0].second), errc::bad_field);
}

TEST(ChatCalls, AnUnknownServiceIsNoSuchService) {
  Harness h;
  h.call("client-1", 1, "nobody", "hi");
  EXPECT_TRUE(h.take_calls().empty());
  auto replies = h.take_replies();
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(code(replies[0].second), errc::no_such_service);
}

TEST(ChatCalls, AServiceThatIsNotConnectedIsUnavailableAtOnce) {
  Harness h;
  h.call("client-1", 1, "bot", "stats");
  auto calls = h.take_calls();
  ASSERT_EQ(calls.size(), 1u);
  h.deliver(Inbound::Via::undeliverable, service_actor("bot"),
            router::encode_peer(PeerKind::forward, calls[0].corr, encode_request({1, Call{"bot", "ann", "stats"}})));
  auto replies = h.take_replies();
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(code(replies[0].second), errc::unavailable);
  EXPECT_EQ(h.chat.stats().call_failures, 1u);
}

TEST(ChatCalls, ASilentServiceIsUnavailableAfterItsOwnTimeoutAndALateAnswerIsDropped) {
  Harness h;
  h.call("client-1", 1, "bot", "stats");
  h.call("client-2", 2, "search", "query");
  auto calls = h.take_calls();
  ASSERT_EQ(calls.size(), 2u);
  h.advance(kTimeout - 1ms);
  EXPECT_TRUE(h.take_replies().empty());
  h.advance(1ms);
  auto replies = h.take_replies();
  ASSERT_EQ(replies.size(), 1u) << "bot's timeout has passed, search's not";
  EXPECT_EQ(replies[0].first, "client-1");
  EXPECT_EQ(code(replies[0].second), errc::unavailable);
  h.service_answers("bot", calls[0].corr, Reply{1, CallOk{"bot", "late"}});
  EXPECT_TRUE(h.take_replies().empty()) << "the caller was already answered";
  h.advance(kTimeout);
  replies = h.take_replies();
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0].first, "client-2");
}

TEST(ChatCalls, AnAnswerThatIsNotAReplyToThatCallIsAnInternalErrorNotPassedOn) {
  Harness h;
  h.call("client-1", 5, "bot", "stats");
  auto calls = h.take_calls();
  h.deliver(Inbound::Via::peer, service_actor("bot"), router::encode_peer(PeerKind::reply, calls[0].corr, "garbage"));
  auto replies = h.take_replies();
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0].second.id, 5u);
  EXPECT_EQ(code(replies[0].second), errc::internal);

  h.call("client-1", 6, "bot", "stats");
  calls = h.take_calls();
  h.service_answers("bot", calls[0].corr, Reply{99, CallOk{"bot", "for someone else"}});
  replies = h.take_replies();
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(code(replies[0].second), errc::internal);
  // An answer from another service with the same number is not this call's.
  h.call("client-1", 7, "bot", "stats");
  calls = h.take_calls();
  h.service_answers("search", calls[0].corr, Reply{7, CallOk{"search", "impostor"}});
  EXPECT_TRUE(h.take_replies().empty());
}

TEST(ChatCalls, StoppingAnswersCallsInFlight) {
  Harness h;
  h.call("client-1", 1, "bot", "stats");
  h.take_calls();
  h.chat.on_stop(h.now, h.fx);
  auto replies = h.take_replies();
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(code(replies[0].second), errc::unavailable);
}
