// Deliveries (actors/webhook/deliveries.hpp): what one webhook owes its receiver, driven
// with a simulated clock and no sockets: order per room, one request at a time per
// room, retries with backoff, the cursor, the backlog, bounded memory.
#include <gtest/gtest.h>

#include "switchboard/actors/webhook/deliveries.hpp"
#include "switchboard/actors/webhook/notifications.hpp"
#include "switchboard/actors/webhook/presence_queue.hpp"
#include "switchboard/actors/webhook/webhook_frames.hpp"
#include "switchboard/actors/webhook/webhook_sender.hpp"
#include "switchboard/common/event_rooms.hpp"

using namespace switchboard::actors;
using namespace switchboard::actors::webhook;
using namespace std::chrono_literals;
using switchboard::transport::RoomMessage;

namespace {

template <class T>
std::vector<T> only(const std::vector<Deliveries::Action>& actions) {
  std::vector<T> out;
  for (const auto& a : actions)
    if (const auto* t = std::get_if<T>(&a)) out.push_back(*t);
  return out;
}

std::vector<RoomMessage> messages(const std::string& room, std::uint64_t from, std::uint64_t to,
                                  const std::string& user = "ann") {
  std::vector<RoomMessage> out;
  for (auto s = from; s <= to; ++s) out.push_back({room, s, user, 1000 + s, "m" + std::to_string(s), "c" + std::to_string(s)});
  return out;
}

/// A Deliveries that knows `room` with its cursor at `cursor` and `last` stored.
struct Fixture {
  DeliveryOptions options;
  Clock::time_point now = Clock::time_point{} + 1h;
  std::optional<Deliveries> d;
  explicit Fixture(DeliveryOptions o = {}) : options(std::move(o)) {
    options.name = "w";
    d.emplace(options);
    d->actions(now);  // the first scan's ask
    d->backlog(Backlog{"w", "", {}, false});  // nothing behind
  }
  /// What know() got besides its question: handed out by the next step().
  std::vector<Deliveries::Action> kept;
  std::vector<Deliveries::Action> step() {
    auto out = std::move(kept);
    kept.clear();
    for (auto& a : d->actions(now)) out.push_back(std::move(a));
    return out;
  }
  void know(const std::string& room, std::uint64_t cursor, std::uint64_t last) {
    d->committed(room, last);
    std::size_t asked = 0;
    for (auto& a : d->actions(now)) {
      if (const auto* ask = std::get_if<Deliveries::AskBacklog>(&a)) {
        ++asked;
        EXPECT_EQ(ask->room, room) << "an unknown room's cursor is asked for";
      } else {
        kept.push_back(std::move(a));
      }
    }
    EXPECT_EQ(asked, 1u);
    d->backlog(Backlog{"w", room, {{room, cursor, last}}, false});
  }
};

}  // namespace

TEST(WebhookDeliveries, EventsOfARoomGoOutInOrderOneRequestAtATime) {
  Fixture f;
  f.know("general", 0, 3);
  auto fetches = only<Deliveries::Fetch>(f.step());
  ASSERT_EQ(fetches.size(), 1u);
  EXPECT_EQ(fetches[0].after, 0u);
  f.d->page("general", messages("general", 1, 3), 0, f.now);
  auto posts = only<Deliveries::Post>(f.step());
  ASSERT_EQ(posts.size(), 1u);
  ASSERT_EQ(posts[0].events.size(), 1u);
  EXPECT_EQ(posts[0].events[0].seq, 1u);
  EXPECT_TRUE(only<Deliveries::Post>(f.step()).empty()) << "the next waits until the receiver took this one";
  for (std::uint64_t seq = 2; seq <= 3; ++seq) {
    f.d->posted("general", true, f.now);
    posts = only<Deliveries::Post>(f.step());
    ASSERT_EQ(posts.size(), 1u);
    EXPECT_EQ(posts[0].events[0].seq, seq);
  }
  f.d->posted("general", true, f.now);
  EXPECT_EQ(f.d->stats().delivered, 3u);
  EXPECT_EQ(f.d->stats().pending, 0u);
}

TEST(WebhookDeliveries, AFailedRequestIsRetriedWithGrowingBackoffAndNothingAfterItGoesFirst) {
  DeliveryOptions o;
  o.retry_min = 100ms;
  o.retry_max = 400ms;
  o.backlog_interval = 1h;  // no scan wakes it meanwhile
  Fixture f(o);
  f.know("r", 0, 2);
  f.step();
  f.d->page("r", messages("r", 1, 2), 0, f.now);
  ASSERT_EQ(only<Deliveries::Post>(f.step()).size(), 1u);
  std::vector<std::chrono::milliseconds> waits;
  for (int attempt = 0; attempt < 4; ++attempt) {
    f.d->posted("r", false, f.now);
    EXPECT_FALSE(f.d->stats().up);
    EXPECT_TRUE(only<Deliveries::Post>(f.step()).empty()) << "not before the backoff";
    const auto wake = f.d->next_wake();
    waits.push_back(std::chrono::duration_cast<std::chrono::milliseconds>(wake - f.now));
    f.now = wake;
    auto posts = only<Deliveries::Post>(f.step());
    SCOPED_TRACE("attempt " + std::to_string(attempt) + " waited " + std::to_string(waits.back().count()));
    ASSERT_EQ(posts.size(), 1u);
    EXPECT_EQ(posts[0].events[0].seq, 1u) << "the same event again, not the next";
  }
  EXPECT_EQ(waits, (std::vector<std::chrono::milliseconds>{100ms, 200ms, 400ms, 400ms}));
  EXPECT_EQ(f.d->stats().failures, 4u);
  ASSERT_TRUE(f.d->stats().failing_since);
  f.d->posted("r", true, f.now);
  EXPECT_TRUE(f.d->stats().up);
  EXPECT_FALSE(f.d->stats().failing_since);
  EXPECT_EQ(only<Deliveries::Post>(f.step())[0].events[0].seq, 2u);
}

TEST(WebhookDeliveries, RoomsGoSideBySideUpToTheConnections) {
  DeliveryOptions o;
  o.connections = 2;
  Fixture f(o);
  for (const char* room : {"a", "b", "c"}) f.know(room, 0, 1);
  for (const auto& fetch : only<Deliveries::Fetch>(f.step())) f.d->page(fetch.room, messages(fetch.room, 1, 1), 0, f.now);
  auto posts = only<Deliveries::Post>(f.step());
  ASSERT_EQ(posts.size(), 2u);
  f.d->posted(posts[0].room, true, f.now);
  auto next = only<Deliveries::Post>(f.step());
  ASSERT_EQ(next.size(), 1u) << "a free connection takes the room that waited";
  EXPECT_NE(next[0].room, posts[0].room);
  EXPECT_NE(next[0].room, posts[1].room);
}

TEST(WebhookDeliveries, ABatchCarriesConsecutiveEventsAndTheCursorIsStoredAtMostEveryInterval) {
  DeliveryOptions o;
  o.max_batch = 10;
  o.cursor_interval = 200ms;
  Fixture f(o);
  f.know("r", 4, 30);
  auto fetch = only<Deliveries::Fetch>(f.step());
  ASSERT_EQ(fetch.size(), 1u);
  EXPECT_EQ(fetch[0].after, 4u) << "from the stored cursor";
  f.d->page("r", messages("r", 5, 30), 0, f.now);
  auto posts = only<Deliveries::Post>(f.step());
  ASSERT_EQ(posts[0].events.size(), 10u);
  EXPECT_EQ(posts[0].events.front().seq, 5u);
  EXPECT_EQ(posts[0].events.back().seq, 14u);
  f.d->posted("r", true, f.now);
  auto actions = f.step();
  auto cursors = only<Deliveries::StoreCursor>(actions);
  ASSERT_EQ(cursors.size(), 1u);
  EXPECT_EQ(cursors[0].seq, 14u);
  f.d->posted("r", true, f.now);
  EXPECT_TRUE(only<Deliveries::StoreCursor>(f.step()).empty()) << "not again within the interval";
  f.now += 200ms;
  cursors = only<Deliveries::StoreCursor>(f.step());
  ASSERT_EQ(cursors.size(), 1u);
  EXPECT_EQ(cursors[0].seq, 24u);
}

TEST(WebhookDeliveries, WhatRetentionTrimmedBeforeDeliveryIsSkippedAndCounted) {
  Fixture f;
  f.know("r", 0, 10);
  f.step();
  f.d->page("r", messages("r", 7, 10), 7, f.now);  // 1..6 trimmed
  auto posts = only<Deliveries::Post>(f.step());
  ASSERT_EQ(posts.size(), 1u);
  EXPECT_EQ(posts[0].events[0].seq, 7u);
  EXPECT_EQ(f.d->stats().skipped, 6u);
}

TEST(WebhookDeliveries, OnlyTheCoveredRoomsAndSendersGoOut) {
  DeliveryOptions o;
  o.rooms = {"support-*"};
  o.users = {"ann"};
  Fixture f(o);
  f.d->committed("general", 5);
  EXPECT_TRUE(only<Deliveries::AskBacklog>(f.step()).empty()) << "a room not covered is not followed";
  f.know("support-1", 0, 3);
  f.step();
  auto page = messages("support-1", 1, 3);
  page[0].user = "bob";
  page[1].user = "bob";
  f.d->page("support-1", page, 0, f.now);
  auto posts = only<Deliveries::Post>(f.step());
  ASSERT_EQ(posts.size(), 1u);
  EXPECT_EQ(posts[0].events[0].seq, 3u) << "bob's are passed over";
}

TEST(WebhookDeliveries, EventsLogsAreCoveredByTheRoomTheyAreOfAndFilteredByKindAndUser) {
  using switchboard::events_room;
  auto event = [](std::uint64_t n, std::string json) {
    return RoomMessage{events_room("support-1"), n, "", 1000 + n, std::move(json), ""};
  };
  DeliveryOptions o;
  o.rooms = {"support-*"};
  o.users = {"ann"};
  o.messages = false;
  o.membership = true;
  Fixture f(o);
  f.d->committed("support-1", 5);
  f.d->committed(events_room("general"), 5);
  EXPECT_TRUE(only<Deliveries::AskBacklog>(f.step()).empty()) << "no messages; general's events not covered";
  f.know(events_room("support-1"), 0, 4);
  f.step();
  f.d->page(events_room("support-1"),
            {event(1, R"({"type":"room","event":"created","room":"support-1","ts":1,"after_seq":0})"),
             event(2, R"({"type":"membership","event":"joined","room":"support-1","user":"bob","ts":1,"after_seq":0})"),
             event(3, R"({"type":"membership","event":"joined","room":"support-1","user":"ann","ts":1,"after_seq":0})"),
             event(4, R"({"type":"membership","event":"left","room":"support-1","user":"ann","ts":1,"after_seq":0})")},
            0, f.now);
  auto posts = only<Deliveries::Post>(f.step());
  ASSERT_EQ(posts.size(), 1u);
  EXPECT_EQ(posts[0].events[0].seq, 3u) << "no room events asked for; bob's passed over";
  f.d->posted(events_room("support-1"), true, f.now);
  posts = only<Deliveries::Post>(f.step());
  ASSERT_EQ(posts.size(), 1u);
  EXPECT_EQ(posts[0].events[0].seq, 4u);
}

TEST(WebhookDeliveries, MemoryIsBoundedWhateverTheReceiverDoes) {
  DeliveryOptions o;
  o.page = 100;
  o.max_held = 250;
  Fixture f(o);
  for (int i = 0; i < 5; ++i) f.know("r" + std::to_string(i), 0, 1000);
  auto fetches = only<Deliveries::Fetch>(f.step());
  EXPECT_EQ(fetches.size(), 2u) << "two pages of 100 fit in 250 events; the third waits";
  for (const auto& fetch : fetches) f.d->page(fetch.room, messages(fetch.room, 1, 100), 0, f.now);
  EXPECT_TRUE(only<Deliveries::Fetch>(f.step()).empty());
}

TEST(WebhookDeliveries, TheBacklogIsScannedPageByPageAndAgainEachInterval) {
  DeliveryOptions o;
  o.backlog_interval = 1000ms;
  o.name = "w";
  Deliveries d(o);
  auto now = Clock::time_point{} + 1h;
  auto asks = only<Deliveries::AskBacklog>(d.actions(now));
  ASSERT_EQ(asks.size(), 1u);
  EXPECT_EQ(asks[0].after, "");
  d.backlog(Backlog{"w", "", {{"a", 3, 5}}, true});
  auto actions = d.actions(now);
  asks = only<Deliveries::AskBacklog>(actions);
  ASSERT_EQ(asks.size(), 1u) << "the next page at once";
  EXPECT_EQ(asks[0].after, "a");
  auto fetches = only<Deliveries::Fetch>(actions);
  ASSERT_EQ(fetches.size(), 1u);
  EXPECT_EQ(fetches[0].after, 3u) << "a room behind is read from its cursor";
  d.backlog(Backlog{"w", "", {{"b", 0, 2}}, false});
  actions = d.actions(now);
  EXPECT_TRUE(only<Deliveries::AskBacklog>(actions).empty());
  fetches = only<Deliveries::Fetch>(actions);
  ASSERT_EQ(fetches.size(), 1u);
  EXPECT_EQ(fetches[0].room, "b");
  EXPECT_EQ(d.stats().pending, 4u);
  now += 1000ms;
  asks = only<Deliveries::AskBacklog>(d.actions(now));
  ASSERT_EQ(asks.size(), 1u);
  EXPECT_EQ(asks[0].after, "") << "a new scan from the start";
}

TEST(WebhookFrames, EveryKindReadsBackAsWritten) {
  const std::vector<Frame> frames = {
      Committed{{{"general", 7}, {"ops", 1}}},
      BacklogAsk{"crm", "after", "", {"support-*"}},
      BacklogAsk{"crm", "", "one", {"*"}, false, true},
      Fetch{9, switchboard::events_room("général"), 4, 200},
      PresenceChange{PresenceChange::Kind::offline, "bob", "away", "at lunch", 1700000000000},
      Backlog{"crm", "one", {{"one", 3, 9}}, true},
      Cursor{"crm", "général", 42},
  };
  for (const auto& f : frames) {
    auto back = decode(encode(f));
    ASSERT_TRUE(back);
    EXPECT_EQ(*back, f);
  }
  EXPECT_FALSE(decode("not msgpack"));
  EXPECT_TRUE(is_cursor_key(cursor_key("crm")));
  EXPECT_FALSE(is_cursor_key("ann"));
}

TEST(WebhookEvents, IdsAreStableAndTheJsonCarriesTheMessage) {
  EXPECT_EQ(event_id("general", 12), "m:general:12");
  EXPECT_EQ(event_id("a b:c", 3), "m:a%20b%3Ac:3");
  RoomMessage m{"general", 12, "ann", 1700000000000, "hi \"there\"", "c-1", {"bob"}};
  EXPECT_EQ(event_json("crm", "n1", m),
            R"({"id":"m:general:12","type":"message","webhook":"crm","node":"n1","room":"general","seq":12,)"
            R"("user":"ann","ts":1700000000000,"body":"hi \"there\"","cmid":"c-1","mentions":["bob"]})");
  // An event of a room's events log: its id names the room, its stored JSON follows n.
  RoomMessage e{switchboard::events_room("a b"), 3, "", 1700000000000,
                R"({"type":"room","event":"deleted","room":"a b","ts":1700000000000,"after_seq":9})", ""};
  EXPECT_EQ(event_id(e.room, e.seq), "e:a%20b:3");
  EXPECT_EQ(event_json("crm", "n1", e),
            R"({"id":"e:a%20b:3","webhook":"crm","node":"n1","n":3,"type":"room","event":"deleted","room":"a b",)"
            R"("ts":1700000000000,"after_seq":9})");
  const auto two = request_body("crm", "n1", {m, m});
  EXPECT_EQ(two.front(), '[');
  EXPECT_EQ(two.back(), ']');
  const auto sig = signature("secret", 1700000000, "{}");
  EXPECT_EQ(sig.substr(0, 3), "v1=");
  EXPECT_EQ(sig.size(), 3u + 64u);
  EXPECT_NE(sig, signature("secret", 1700000001, "{}")) << "the timestamp is signed";
  EXPECT_NE(sig, signature("secres", 1700000000, "{}"));
}

TEST(WebhookDeliveries, AWindowGathersARoomsBurstIntoOnePost) {
  DeliveryOptions o;
  o.max_batch = 200;
  o.window = 1000ms;
  Fixture f(o);
  f.know("r", 0, 1);
  f.step();
  f.d->page("r", messages("r", 1, 1), 0, f.now);
  EXPECT_TRUE(only<Deliveries::Post>(f.step()).empty()) << "the window is open";
  f.now += 300ms;
  f.d->committed("r", 3);
  auto fetch = only<Deliveries::Fetch>(f.step());
  ASSERT_EQ(fetch.size(), 1u) << "more is read while the window is open";
  EXPECT_EQ(fetch[0].after, 1u);
  f.d->page("r", messages("r", 2, 3), 0, f.now);
  EXPECT_TRUE(only<Deliveries::Post>(f.step()).empty());
  EXPECT_EQ(f.d->next_wake(), f.now + 700ms) << "the window ends 1 s after the first was read";
  f.now += 700ms;
  auto posts = only<Deliveries::Post>(f.step());
  ASSERT_EQ(posts.size(), 1u);
  EXPECT_EQ(posts[0].events.size(), 3u);
}

TEST(WebhookNotifications, OfflineMembersHearOfWhatTheirLevelAsksForAndHaveNotRead) {
  using L = switchboard::transport::NotifyLevel;
  auto msgs = messages("general", 10, 13);
  msgs[1].mentions = {"cy"};  // 11 mentions cy
  msgs[2].user = "bob";       // 12 is bob's own
  Audience audience{"n", "general", true,
                    {{"ann", static_cast<std::uint8_t>(L::all), 13},       // sent 10, 11, 13; read all
                     {"bob", static_cast<std::uint8_t>(L::all), 10},       // online
                     {"cy", static_cast<std::uint8_t>(L::mentions), 0},    // mentions only
                     {"dan", static_cast<std::uint8_t>(L::all), 11},       // read up to 11
                     {"eve", static_cast<std::uint8_t>(L::none), 0}}};
  auto out = notifications_for(msgs, audience, {"bob"});
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].user, "cy");
  ASSERT_EQ(out[0].messages.size(), 1u);
  EXPECT_EQ(out[0].messages[0]->seq, 11u);
  EXPECT_TRUE(out[0].mentioned[0]);
  EXPECT_EQ(out[1].user, "dan");
  ASSERT_EQ(out[1].messages.size(), 2u);
  EXPECT_EQ(out[1].messages[0]->seq, 12u);
  EXPECT_EQ(out[1].messages[1]->seq, 13u);
  EXPECT_TRUE(notifications_for(msgs, Audience{"n", "general", false, audience.members}, {}).empty())
      << "a room that is gone notifies nobody";

  const auto json = notification_json("push", "n1", out[1]);
  EXPECT_NE(json.find(R"("id":"n:dan:general:12-13","type":"notification","webhook":"push","node":"n1","user":"dan",)"
                      R"("room":"general","count":2,"mentioned":false,"messages":[{"key":"dan:general:12","seq":12,)"),
            std::string::npos)
      << json;
  EXPECT_EQ(notification_id(out[1]), "n:dan:general:12-13");
  EXPECT_EQ(notification_key("a b", "r:1", 7), "a%20b:r%3A1:7");
  switchboard::transport::RoomMessage long_one{"general", 20, "ann", 1, std::string(150, 'x') + std::string(100, 'y'), "c"};
  std::vector<switchboard::transport::RoomMessage> one{long_one};
  auto cut = notifications_for(one, Audience{"n", "general", true, {{"cy", 1, 0}}}, {});
  ASSERT_EQ(cut.size(), 1u);
  EXPECT_NE(notification_json("push", "n1", cut[0]).find("\"preview\":\"" + std::string(150, 'x') + std::string(50, 'y') + "\""),
            std::string::npos)
      << "the preview is the first 200 bytes";
}

TEST(WebhookPresence, EventsGoInOrderOneRequestAtATimeRetriedWhole) {
  PresenceQueue q({3, 2, 100ms, 400ms});
  auto now = Clock::time_point{} + 1h;
  EXPECT_TRUE(q.next(now).empty());
  for (int i = 1; i <= 3; ++i) q.push({"p" + std::to_string(i), "{}"});
  auto first = q.next(now);
  ASSERT_EQ(first.size(), 2u) << "max_batch";
  EXPECT_EQ(first[0].id, "p1");
  EXPECT_TRUE(q.next(now).empty()) << "one request at a time";
  q.posted(false, now);
  EXPECT_EQ(q.failures(), 1u);
  ASSERT_TRUE(q.failing_since());
  EXPECT_TRUE(q.next(now).empty()) << "not before the backoff";
  ASSERT_TRUE(q.wake());
  EXPECT_EQ(*q.wake(), now + 100ms);
  q.push({"p4", "{}"});  // over max_held (3): the oldest not on its way goes
  EXPECT_EQ(q.dropped(), 1u);
  now += 100ms;
  auto again = q.next(now);
  ASSERT_EQ(again.size(), 2u);
  EXPECT_EQ(again[0].id, "p1") << "the same request again";
  EXPECT_EQ(again[1].id, "p2");
  q.posted(false, now);
  EXPECT_EQ(*q.wake(), now + 200ms) << "backoff doubles";
  now += 200ms;
  q.next(now);
  q.posted(true, now);
  EXPECT_EQ(q.delivered(), 2u);
  EXPECT_FALSE(q.failing_since());
  auto rest = q.next(now);
  ASSERT_EQ(rest.size(), 1u);
  EXPECT_EQ(rest[0].id, "p4") << "p3 was dropped";
  q.posted(true, now);
  EXPECT_EQ(q.held(), 0u);
  EXPECT_FALSE(q.wake());
}

TEST(WebhookDeliveries, IdleRoomsWithNothingOwedAreForgottenAndAskedForAgainWhenTheyWake) {
  DeliveryOptions o;
  o.forget_after = 60s;
  o.cursor_interval = 0ms;
  o.backlog_interval = 1h;
  Fixture f(o);
  f.know("quiet", 0, 1);
  f.know("owed", 0, 2);
  for (const auto& fetch : only<Deliveries::Fetch>(f.step())) f.d->page(fetch.room, messages(fetch.room, 1, 1), 0, f.now);
  f.step();
  f.d->posted("quiet", true, f.now);
  f.d->posted("owed", true, f.now);  // owed still: seq 2 is not read yet
  f.step();  // quiet's cursor stored
  EXPECT_EQ(f.d->rooms_held(), 2u);
  f.now += 61s;
  f.d->page_failed("owed", f.now);  // keeps it busy, and it is owed anyway
  f.step();
  EXPECT_EQ(f.d->rooms_held(), 1u) << "quiet is forgotten, owed is not";
  f.d->committed("quiet", 2);
  auto asks = only<Deliveries::AskBacklog>(f.step());
  ASSERT_EQ(asks.size(), 1u);
  EXPECT_EQ(asks[0].room, "quiet") << "its cursor is asked of chat again";
}
