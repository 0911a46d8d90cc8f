// The presence actor as a pure handler with a simulated clock: no sockets, no sleeps.
#include <algorithm>

#include <gtest/gtest.h>

#include "switchboard/actors/membership.hpp"
#include "switchboard/actors/presence.hpp"
#include "switchboard/transport/codec.hpp"

using namespace switchboard;
using namespace switchboard::actors;
using namespace switchboard::transport;
using namespace std::chrono_literals;
using Kind = PresenceEvent::Kind;

namespace {

persistence::Snapshot rooms(std::map<std::string, std::vector<std::string>> members) {
  persistence::Snapshot s;
  for (auto& [room, users] : members) {
    auto& state = s.rooms[room];
    for (const auto& user : users) state.members.emplace(user, Role::member);
  }
  return s;
}

struct Harness {
  explicit Harness(persistence::Snapshot snapshot = rooms({{"lobby", {"ann", "bob"}}, {"ops", {"ann"}}}),
                   PresenceOptions options = {})
      : presence(options, snapshot), options(options) {}

  PresenceReplyBody call(PresenceRequestBody body) {
    std::string frame = encode_presence_request({++id, std::move(body)});
    return raw({frame});
  }
  PresenceReplyBody raw(std::vector<std::string> frames) {
    Inbound in{Inbound::Via::mailbox, "client", {}};
    for (const auto& f : frames) in.frames.push_back(f);
    presence.on_message(in, now, fx);
    PresenceReplyBody reply;
    for (const auto& e : fx.list())
      if (auto* r = std::get_if<Effects::Reply>(&e)) reply = decode_presence_reply(r->payload, Limits{})->body;
    collect();
    return reply;
  }
  void member(const std::string& room, const std::string& user, bool joined) {
    std::string frame = encode(MembershipChange{room, user, joined});
    presence.on_message(Inbound{Inbound::Via::internal, "chat", {frame}}, now, fx);
    collect();
  }
  /// Moves both clocks and fires the expiry timer if it is due, as the runtime would.
  void advance(std::chrono::milliseconds by) {
    now.steady += by;
    now.wall_ms += static_cast<std::uint64_t>(by.count());
    while (timer && *timer <= now.steady) {
      timer.reset();
      presence.on_timer(1, now, fx);
      collect();
    }
  }
  void collect() {
    for (const auto& e : fx.list()) {
      if (auto* p = std::get_if<Effects::Publish>(&e)) events.push_back(*decode_presence_event(p->payload, Limits{}));
      if (auto* t = std::get_if<Effects::Timer>(&e))
        if (!timer || t->at < *timer) timer = t->at;
    }
    fx.clear();
  }
  std::vector<PresenceEvent> take_events() { return std::exchange(events, {}); }
  WhoOk who(const std::string& room) { return std::get<WhoOk>(call(Who{room})); }
  bool is_online(const std::string& user) { return std::get<UserStatusOk>(call(UserStatus{user})).online; }
  std::optional<std::uint64_t> last_seen(const std::string& user) {
    return std::get<UserStatusOk>(call(UserStatus{user})).last_seen;
  }

  Presence presence;
  PresenceOptions options;
  Now now{SteadyClock::time_point{} + 1h, 1'700'000'000'000};
  Effects fx;
  std::optional<SteadyClock::time_point> timer;
  std::vector<PresenceEvent> events;
  std::uint64_t id = 0;
};

errc code(const PresenceReplyBody& r) {
  return std::holds_alternative<ErrorReply>(r) ? std::get<ErrorReply>(r).code : errc::ok;
}

}  // namespace

TEST(Presence, SessionExpiresExactlyAtTheTtlBoundary) {
  Harness h;
  ASSERT_EQ(code(h.call(SessionOpen{"s1", "ann"})), errc::ok);
  EXPECT_TRUE(h.is_online("ann"));
  h.advance(h.options.session_ttl - 1ms);
  EXPECT_TRUE(h.is_online("ann")) << "one millisecond before the TTL the session is alive";
  h.take_events();
  h.advance(1ms);
  EXPECT_FALSE(h.is_online("ann")) << "at the TTL the session is gone";
  auto events = h.take_events();
  ASSERT_EQ(events.size(), 2u);  // ann is in lobby and ops
  for (const auto& e : events) {
    EXPECT_EQ(e.kind, Kind::offline);
    EXPECT_EQ(e.user, "ann");
  }
  EXPECT_EQ(code(h.call(Heartbeat{"s1"})), errc::unknown_session);
}

TEST(Presence, HeartbeatsKeepASessionAlive) {
  Harness h;
  h.call(SessionOpen{"s1", "ann"});
  for (int i = 0; i < 10; ++i) {
    h.advance(h.options.heartbeat_interval);
    ASSERT_EQ(code(h.call(Heartbeat{"s1"})), errc::ok);
  }
  EXPECT_TRUE(h.is_online("ann"));
  EXPECT_EQ(h.presence.sessions(), 1u);
}

TEST(Presence, AUserWithTwoSessionsStaysOnlineWhenOneExpires) {
  Harness h;
  h.call(SessionOpen{"phone", "ann"});
  h.advance(5s);
  h.call(SessionOpen{"laptop", "ann"});
  auto opened = h.take_events();
  ASSERT_EQ(opened.size(), 2u) << "online once per room, for the first session only";
  h.advance(h.options.session_ttl - 5s);  // the phone's TTL is up; the laptop's is not
  EXPECT_EQ(h.presence.sessions(), 1u);
  EXPECT_TRUE(h.is_online("ann"));
  EXPECT_TRUE(h.take_events().empty()) << "no offline while another session lives";
  h.advance(5s);
  EXPECT_FALSE(h.is_online("ann"));
  EXPECT_EQ(h.take_events().size(), 2u);
}

TEST(Presence, ACleanCloseIsOfflineAtOnce) {
  Harness h;
  h.call(SessionOpen{"s1", "bob"});
  h.take_events();
  ASSERT_EQ(code(h.call(SessionClose{"s1"})), errc::ok);
  auto events = h.take_events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, Kind::offline);
  EXPECT_EQ(events[0].room, "lobby");
  EXPECT_FALSE(h.is_online("bob"));
  EXPECT_EQ(code(h.call(SessionClose{"s1"})), errc::unknown_session);
}

TEST(Presence, FlappingSessionsGiveOneEventPerChangeAndVersionsStepByOne) {
  Harness h;
  std::uint64_t version = h.who("lobby").version;
  for (int i = 0; i < 5; ++i) {
    h.call(SessionOpen{"s" + std::to_string(i), "bob"});
    h.call(SessionClose{"s" + std::to_string(i)});
  }
  auto events = h.take_events();
  ASSERT_EQ(events.size(), 10u);
  for (std::size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].kind, i % 2 ? Kind::offline : Kind::online);
    EXPECT_EQ(events[i].version, version + i + 1) << "versions step by one, with no gap";
  }
  EXPECT_EQ(h.who("lobby").version, version + 10);
}

TEST(Presence, StatusChangesArePublishedAndShownByWho) {
  Harness h;
  h.call(SessionOpen{"s1", "ann"});
  h.take_events();
  ASSERT_EQ(code(h.call(SetStatus{"s1", Availability::busy, "in a meeting"})), errc::ok);
  auto events = h.take_events();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].kind, Kind::status);
  EXPECT_EQ(events[0].status, Availability::busy);
  EXPECT_EQ(events[0].text, "in a meeting");
  h.call(SetStatus{"s1", Availability::busy, "in a meeting"});
  EXPECT_TRUE(h.take_events().empty()) << "setting the same status again changes nothing";
  auto who = h.who("lobby");
  ASSERT_EQ(who.users.size(), 1u);
  EXPECT_EQ(who.users[0], (PresentUser{"ann", Availability::busy, "in a meeting"}));
  auto status = std::get<UserStatusOk>(h.call(UserStatus{"ann"}));
  EXPECT_TRUE(status.online);
  EXPECT_EQ(status.status, Availability::busy);
}

TEST(Presence, WhoListsOnlineMembersOnly) {
  Harness h;
  h.call(SessionOpen{"s1", "ann"});
  h.call(SessionOpen{"s2", "eve"});  // online, but no member of lobby
  auto who = h.who("lobby");
  ASSERT_EQ(who.users.size(), 1u);
  EXPECT_EQ(who.users[0].user, "ann");
  EXPECT_EQ(code(h.call(Who{"nowhere"})), errc::no_such_room);
}

TEST(Presence, JoinsAndLeavesFromChatAreEventsAndChangeWho) {
  Harness h;
  h.call(SessionOpen{"s2", "eve"});
  h.take_events();
  h.member("lobby", "eve", true);
  auto events = h.take_events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, Kind::join);
  EXPECT_EQ(h.who("lobby").users.size(), 1u);
  h.member("lobby", "eve", true);  // the same again: nothing
  EXPECT_TRUE(h.take_events().empty());
  h.member("lobby", "eve", false);
  events = h.take_events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, Kind::leave);
  EXPECT_TRUE(h.who("lobby").users.empty());
  h.member("fresh", "eve", true);  // a room created after start
  EXPECT_EQ(h.who("fresh").users.size(), 1u);
}

TEST(Presence, TypingExpiresByItselfAndIsRateLimitedPerSession) {
  Harness h;
  h.call(SessionOpen{"s1", "ann"});
  h.take_events();
  const auto version = h.who("lobby").version;
  ASSERT_EQ(code(h.call(Typing{"s1", "lobby"})), errc::ok);
  auto events = h.take_events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, Kind::typing);
  EXPECT_EQ(events[0].ttl_ms, static_cast<std::uint64_t>(h.options.typing_ttl.count()));
  EXPECT_EQ(events[0].version, version) << "typing does not step the version";
  EXPECT_EQ(h.who("lobby").typing, (std::vector<std::string>{"ann"}));
  EXPECT_EQ(code(h.call(Typing{"s1", "lobby"})), errc::rate_limited);
  h.advance(h.options.typing_ttl - 1ms);
  EXPECT_EQ(h.who("lobby").typing.size(), 1u);
  h.advance(1ms);
  EXPECT_TRUE(h.who("lobby").typing.empty()) << "typing expires by itself";
  EXPECT_EQ(code(h.call(Typing{"s1", "lobby"})), errc::ok) << "allowed again after the interval";
  EXPECT_EQ(code(h.call(Typing{"s1", "nowhere"})), errc::no_such_room);
}

TEST(Presence, BadInputGetsClearErrorsAndPresenceKeepsServing) {
  PresenceOptions options;
  Harness h(rooms({{"lobby", {"ann", "bob"}}}), options);
  EXPECT_EQ(code(h.call(Heartbeat{"never-opened"})), errc::unknown_session);
  EXPECT_EQ(code(h.call(SetStatus{"never-opened", Availability::away, ""})), errc::unknown_session);
  h.call(SessionOpen{"s1", "bob"});
  EXPECT_EQ(code(h.call(SessionOpen{"s1", "eve"})), errc::bad_field) << "a session belongs to one user";
  EXPECT_EQ(code(h.call(Typing{"s1", "lobby"})), errc::ok);
  std::string too_long(Limits{}.max_status_text + 1, 'x');
  EXPECT_EQ(code(h.call(SetStatus{"s1", Availability::away, too_long})), errc::too_large);
  EXPECT_EQ(code(h.call(SetStatus{"s1", Availability::away, "\xff\xfe"})), errc::bad_utf8);
  EXPECT_EQ(code(h.raw({"\xc1"})), errc::bad_frame);
  EXPECT_EQ(code(h.raw({"a", "b"})), errc::bad_frame);
  // A heartbeat flood: the first few pass, the rest are refused, the session lives.
  int refused = 0;
  for (int i = 0; i < 100; ++i) refused += code(h.call(Heartbeat{"s1"})) == errc::rate_limited;
  EXPECT_EQ(refused, 100 - options.heartbeats_per_interval);
  EXPECT_TRUE(h.is_online("bob"));
  h.advance(options.heartbeat_interval);
  EXPECT_EQ(code(h.call(Heartbeat{"s1"})), errc::ok) << "the next interval accepts heartbeats again";
}

TEST(Presence, SessionsPerUserAreBounded) {
  PresenceOptions options;
  options.max_sessions_per_user = 3;
  Harness h(rooms({{"lobby", {"ann"}}}), options);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(code(h.call(SessionOpen{"s" + std::to_string(i), "ann"})), errc::ok);
  EXPECT_EQ(code(h.call(SessionOpen{"s9", "ann"})), errc::limit_reached);
  EXPECT_EQ(code(h.call(SessionOpen{"s0", "ann"})), errc::ok) << "re-opening a live session is not a new one";
}

TEST(Presence, AClosedSessionsUserIsLastSeenWhenItClosed) {
  Harness h;
  h.call(SessionOpen{"s1", "bob"});
  h.advance(2s);
  h.call(Heartbeat{"s1"});
  h.advance(3s);
  const std::uint64_t closed_at = h.now.wall_ms;
  ASSERT_EQ(code(h.call(SessionClose{"s1"})), errc::ok);
  h.advance(1min);
  auto status = std::get<UserStatusOk>(h.call(UserStatus{"bob"}));
  EXPECT_FALSE(status.online);
  EXPECT_EQ(status.last_seen, closed_at) << "the close itself is the last sign of life";
}

TEST(Presence, AnExpiredSessionsUserIsLastSeenAtTheirLastHeartbeatNotWhenTheTtlRanOut) {
  Harness h;
  h.call(SessionOpen{"s1", "ann"});
  h.advance(4s);
  const std::uint64_t last_beat = h.now.wall_ms;
  ASSERT_EQ(code(h.call(Heartbeat{"s1"})), errc::ok);
  h.advance(h.options.session_ttl - 1ms);
  EXPECT_EQ(h.last_seen("ann"), std::nullopt) << "alive until the TTL is up";
  h.advance(1ms);
  ASSERT_FALSE(h.is_online("ann"));
  EXPECT_EQ(h.last_seen("ann"), last_beat);
}

TEST(Presence, OnlineUsersAndUsersNeverSeenHaveNoLastSeen) {
  Harness h;
  EXPECT_EQ(h.last_seen("zed"), std::nullopt) << "not seen since the node started";
  h.call(SessionOpen{"s1", "ann"});
  h.call(SessionClose{"s1"});
  ASSERT_TRUE(h.last_seen("ann"));
  h.advance(1s);
  h.call(SessionOpen{"s2", "ann"});
  auto status = std::get<UserStatusOk>(h.call(UserStatus{"ann"}));
  EXPECT_TRUE(status.online);
  EXPECT_EQ(status.last_seen, std::nullopt) << "online again: no last seen";
  EXPECT_EQ(std::get<WhoOk>(h.call(Who{"lobby"})).users.size(), 1u);
  // eve is in no room: her user entry goes when her session does, her last seen stays.
  h.call(SessionOpen{"s3", "eve"});
  const std::uint64_t closed_at = h.now.wall_ms;
  h.call(SessionClose{"s3"});
  h.advance(1s);
  EXPECT_EQ(h.last_seen("eve"), closed_at);
}

TEST(Presence, AUserWithTwoSessionsIsLastSeenWhenTheLastEndsAtTheLatestSignOfEither) {
  Harness h;
  h.call(SessionOpen{"laptop", "ann"});  // never heard from again: expires at the TTL
  h.call(SessionOpen{"phone", "ann"});
  h.advance(5s);
  h.call(Heartbeat{"phone"});
  h.advance(3s);
  const std::uint64_t phone_closed = h.now.wall_ms;
  h.call(SessionClose{"phone"});
  auto status = std::get<UserStatusOk>(h.call(UserStatus{"ann"}));
  EXPECT_TRUE(status.online) << "the laptop's session lives";
  EXPECT_EQ(status.last_seen, std::nullopt);
  h.advance(h.options.session_ttl);  // the laptop's TTL runs out
  ASSERT_FALSE(h.is_online("ann"));
  EXPECT_EQ(h.last_seen("ann"), phone_closed) << "the phone was seen after the laptop's last heartbeat";
}

TEST(Presence, LastSeenIsKeptForAtMostMaxLastSeenUsersTheOldestForgottenFirst) {
  PresenceOptions options;
  options.max_last_seen = 2;
  Harness h(rooms({{"lobby", {"ann", "bob", "cy"}}}), options);
  std::map<std::string, std::uint64_t> closed;
  for (const char* user : {"ann", "bob", "cy"}) {
    h.call(SessionOpen{std::string("s-") + user, user});
    h.advance(1s);
    closed[user] = h.now.wall_ms;
    h.call(SessionClose{std::string("s-") + user});
  }
  EXPECT_EQ(h.presence.last_seen_users(), 2u);
  EXPECT_EQ(h.last_seen("ann"), std::nullopt) << "seen longest ago: forgotten first";
  EXPECT_EQ(h.last_seen("bob"), closed["bob"]);
  EXPECT_EQ(h.last_seen("cy"), closed["cy"]);
}

TEST(PresenceLastSeen, KeepsTheLatestTimeAndForgetsTheOldestPastItsCapacity) {
  LastSeen seen(3);
  seen.record("ann", 100);
  seen.record("ann", 50);
  EXPECT_EQ(seen.find("ann"), 100u) << "an earlier report changes nothing";
  seen.record("ann", 400);
  EXPECT_EQ(seen.find("ann"), 400u);
  seen.record("bob", 200);
  seen.record("cy", 300);
  seen.record("old", 10);
  EXPECT_EQ(seen.find("old"), std::nullopt) << "older than all kept when full: not kept";
  seen.record("dan", 500);
  EXPECT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen.find("bob"), std::nullopt) << "bob (200) was seen longest ago";
  EXPECT_EQ(seen.find("cy"), 300u);
  EXPECT_EQ(seen.find("ann"), 400u) << "ann's later report moved her out of the way";
  EXPECT_EQ(seen.find("dan"), 500u);
  auto entries = seen.entries();
  std::sort(entries.begin(), entries.end());
  using Entries = std::vector<std::pair<std::string_view, std::uint64_t>>;
  EXPECT_EQ(entries, (Entries{{"ann", 400}, {"cy", 300}, {"dan", 500}}));
  LastSeen none(0);
  none.record("ann", 1);
  EXPECT_EQ(none.find("ann"), std::nullopt);
}
