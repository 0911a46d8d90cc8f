// Read state (docs/PROTOCOL.md, mark_read and rooms): a user's read markers, unread
// counts and the room list that says what is new, through a real node and real
// clients, across a kill -9.
#include <gtest/gtest.h>

#include <algorithm>

#include "client_helpers.hpp"
#include "node_process.hpp"
#include "switchboard/client/client.hpp"

using namespace switchboard;
using switchboard::testing::NodeProcess;
using switchboard::testing::TempDir;

namespace {

/// A client of `node` acting as `user` (the node applies that user's rights).
client::ClientOptions as_user(const NodeProcess& node, const std::string& user) {
  client::ClientOptions o = switchboard::testing::options_for(node);
  o.as = user;
  return o;
}

/// Newest activity first: by the newest message's time, descending, then by name (two
/// rooms may publish in the same millisecond).
bool newest_first(const std::vector<transport::RoomSummary>& summaries) {
  return std::is_sorted(summaries.begin(), summaries.end(), [](const auto& a, const auto& b) {
    return a.last_ts_ms != b.last_ts_ms ? a.last_ts_ms > b.last_ts_ms : a.room < b.room;
  });
}

const transport::RoomSummary* summary_of(const transport::RoomsOk& rooms, const std::string& room) {
  for (const auto& s : rooms.summaries)
    if (s.room == room) return &s;
  return nullptr;
}

/// A node in `data` that can be killed and started again on the same endpoint: a port of
/// the range kept for tests, claimed (an ephemeral one may be taken by some other
/// process's connection meanwhile), storing with fsync.
class RestartableNode {
 public:
  explicit RestartableNode(const TempDir& data)
      : data_(data), listen_("tcp://127.0.0.1:" + std::to_string(switchboard::testing::free_port())) {
    start();
  }
  NodeProcess& operator*() { return *node_; }
  NodeProcess* operator->() { return node_.get(); }
  /// kill -9, then a start on the same data and endpoint.
  void kill_and_restart() {
    node_->kill_hard();
    start();
  }

 private:
  void start() {
    node_ = std::make_unique<NodeProcess>(data_.path(),
                                          std::vector<std::string>{"--durability", "sync", "--bridge", "off", "--metrics", "off"},
                                          std::chrono::seconds(30), listen_);
  }
  const TempDir& data_;
  std::string listen_;
  std::unique_ptr<NodeProcess> node_;
};

}  // namespace

TEST(ReadState, UnreadIsLastSeqLessTheMarkerWhichMovesOnlyForwardAndSurvivesAKill) {
  TempDir data;
  RestartableNode node(data);
  {
    client::Client ann(as_user(*node, "ann"));
    client::Client bob(as_user(*node, "bob"));
    ASSERT_TRUE(ann.create_room("general", "ann"));
    ASSERT_TRUE(ann.create_room("quiet", "ann"));
    ASSERT_TRUE(ann.create_room("secret", "ann", true));
    ASSERT_TRUE(bob.join("general", "bob"));
    ASSERT_TRUE(bob.join("quiet", "bob"));
    for (int i = 1; i <= 10; ++i) ASSERT_TRUE(ann.publish("general", "ann", "news " + std::to_string(i)));
    ASSERT_TRUE(bob.publish("quiet", "bob", "anyone?"));

    // Nothing read yet: everything of ann's is unread for bob, his own message is read.
    auto rooms = bob.rooms_summary("bob");
    ASSERT_TRUE(rooms) << rooms.error().message;
    EXPECT_EQ(rooms->rooms, (std::vector<std::string>{"general", "quiet"}));
    ASSERT_EQ(rooms->summaries.size(), 2u);
    EXPECT_TRUE(newest_first(rooms->summaries));
    const auto* general = summary_of(*rooms, "general");
    ASSERT_NE(general, nullptr);
    EXPECT_GE(summary_of(*rooms, "quiet")->last_ts_ms, general->last_ts_ms) << "quiet published last";
    EXPECT_EQ(general->last_seq, 10u);
    EXPECT_EQ(general->unread, 10u);
    EXPECT_EQ(general->read_seq, 0u);
    EXPECT_EQ(general->last_user, "ann");
    EXPECT_EQ(general->preview, "news 10");
    EXPECT_EQ(general->role, Role::member);
    EXPECT_GT(general->last_ts_ms, 0u);
    EXPECT_EQ(summary_of(*rooms, "quiet")->unread, 0u) << "his own message";
    EXPECT_EQ(summary_of(*rooms, "quiet")->read_seq, 1u);

    // Forward, then never back.
    auto marked = bob.mark_read("general", "bob", 7);
    ASSERT_TRUE(marked) << marked.error().message;
    EXPECT_EQ(marked->seq, 7u);
    EXPECT_EQ(marked->unread, 3u);
    marked = bob.mark_read("general", "bob", 4);
    ASSERT_TRUE(marked);
    EXPECT_EQ(marked->seq, 7u) << "an older seq changes nothing";
    EXPECT_EQ(marked->unread, 3u);

    // Bad input: a clear error each, nothing stored.
    auto past = bob.mark_read("general", "bob", 11);
    ASSERT_FALSE(past);
    EXPECT_EQ(past.error().code, errc::bad_field);
    EXPECT_NE(past.error().message.find("past the last message"), std::string::npos) << past.error().message;
    auto other = bob.mark_read("general", "ann", 10);
    ASSERT_FALSE(other);
    EXPECT_EQ(other.error().code, errc::forbidden);
    auto hidden = bob.mark_read("secret", "bob", 0);
    ASSERT_FALSE(hidden);
    EXPECT_EQ(hidden.error().code, errc::no_such_room);
    EXPECT_EQ(hidden.error().message, "no room named 'secret'") << "a private room stays invisible";
    client::Client cat(as_user(*node, "cat"));
    auto outsider = cat.mark_read("general", "cat", 1);
    ASSERT_FALSE(outsider);
    EXPECT_EQ(outsider.error().code, errc::not_member);

    // Another message: one more unread for bob; ann's own marker moves with it.
    ASSERT_TRUE(ann.publish("general", "ann", "news 11"));
    rooms = bob.rooms_summary("bob");
    ASSERT_TRUE(rooms);
    EXPECT_EQ(summary_of(*rooms, "general")->unread, 4u);
    EXPECT_TRUE(newest_first(rooms->summaries));
    EXPECT_GE(summary_of(*rooms, "general")->last_ts_ms, summary_of(*rooms, "quiet")->last_ts_ms);
    auto anns = ann.rooms_summary("ann");
    ASSERT_TRUE(anns);
    EXPECT_EQ(anns->summaries.size(), 3u) << "her private room too";
    EXPECT_EQ(summary_of(*anns, "general")->unread, 0u);
    EXPECT_EQ(summary_of(*anns, "general")->role, Role::owner);
    EXPECT_EQ(summary_of(*anns, "quiet")->unread, 1u);
    // A user's read state is theirs: bob may list ann's rooms he can see, not what she read.
    auto hers = bob.rooms("ann");
    ASSERT_TRUE(hers);
    EXPECT_EQ(hers->rooms, (std::vector<std::string>{"general", "quiet"})) << "not her private room";
    EXPECT_TRUE(hers->summaries.empty());
  }

  // Acknowledged means durable: the markers are there after kill -9.
  node.kill_and_restart();
  client::Client bob(as_user(*node, "bob"));
  auto rooms = bob.rooms_summary("bob");
  ASSERT_TRUE(rooms) << rooms.error().message;
  const auto* general = summary_of(*rooms, "general");
  ASSERT_NE(general, nullptr);
  EXPECT_EQ(general->read_seq, 7u);
  EXPECT_EQ(general->unread, 4u);
  EXPECT_EQ(general->preview, "news 11");
  EXPECT_EQ(summary_of(*rooms, "quiet")->read_seq, 1u);
  auto marked = bob.mark_read("general", "bob", 11);
  ASSERT_TRUE(marked);
  EXPECT_EQ(marked->unread, 0u);
}

TEST(ReadState, MentionsOfMembersAreCountedUntilReadAndAMentionOfAnOutsiderStoresNothing) {
  TempDir data;
  RestartableNode node(data);
  {
    client::Client ann(as_user(*node, "ann"));
    client::Client bob(as_user(*node, "bob"));
    ASSERT_TRUE(ann.create_room("general", "ann"));
    ASSERT_TRUE(bob.join("general", "bob"));
    ASSERT_TRUE(bob.subscribe("general", 0));

    // A mention of someone who is not a member: a clear error, and nothing is stored.
    auto outsider = ann.publish(transport::Publish{"general", "ann", "", "hi @zed", {"zed"}});
    ASSERT_FALSE(outsider);
    EXPECT_EQ(outsider.error().code, errc::bad_field);
    EXPECT_NE(outsider.error().message.find("'zed' is not a member"), std::string::npos) << outsider.error().message;
    auto last = ann.last_seq("general");
    ASSERT_TRUE(last);
    EXPECT_EQ(*last, 0u) << "nothing stored";

    ASSERT_TRUE(ann.publish(transport::Publish{"general", "ann", "", "hi @bob", {"bob"}}));
    ASSERT_TRUE(ann.publish("general", "ann", "plain"));
    // Pipelined: these go as one publish_batch, each item with its own mentions.
    int acked = 0;
    for (int i = 0; i < 4; ++i)
      ann.publish_async(transport::Publish{"general", "ann", "", "batch " + std::to_string(i),
                                           i % 2 == 0 ? std::vector<std::string>{"bob"} : std::vector<std::string>{}},
                        [&](const auto& r) { acked += r ? 1 : 0; });
    ASSERT_TRUE(ann.wait_all());
    ASSERT_EQ(acked, 4);

    auto rooms = bob.rooms_summary("bob");
    ASSERT_TRUE(rooms) << rooms.error().message;
    ASSERT_NE(summary_of(*rooms, "general"), nullptr);
    EXPECT_EQ(summary_of(*rooms, "general")->unread, 6u);
    EXPECT_EQ(summary_of(*rooms, "general")->mentions, 3u) << "seqs 1, 3 and 5";
    auto anns = ann.rooms_summary("ann");
    ASSERT_TRUE(anns);
    EXPECT_EQ(summary_of(*anns, "general")->mentions, 0u);

    // Subscribers and history see whom a message mentions.
    auto first = bob.next(std::chrono::milliseconds(10'000));
    ASSERT_TRUE(first && *first) << "the first message";
    EXPECT_EQ((*first)->mentions, (std::vector<std::string>{"bob"}));
    auto page = bob.history("general");
    ASSERT_TRUE(page);
    ASSERT_EQ(page->messages.size(), 6u);
    EXPECT_EQ(page->messages[0].mentions, (std::vector<std::string>{"bob"}));
    EXPECT_TRUE(page->messages[1].mentions.empty());

    // Reading passes them: up to seq 3, one is left (seq 5).
    ASSERT_TRUE(bob.mark_read("general", "bob", 3));
    rooms = bob.rooms_summary("bob");
    ASSERT_TRUE(rooms);
    EXPECT_EQ(summary_of(*rooms, "general")->mentions, 1u);
  }

  // Acknowledged means durable: the count is there after kill -9, and reading clears it.
  node.kill_and_restart();
  client::Client bob(as_user(*node, "bob"));
  auto rooms = bob.rooms_summary("bob");
  ASSERT_TRUE(rooms) << rooms.error().message;
  EXPECT_EQ(summary_of(*rooms, "general")->mentions, 1u);
  EXPECT_EQ(summary_of(*rooms, "general")->unread, 3u);
  ASSERT_TRUE(bob.mark_read("general", "bob", 6));
  rooms = bob.rooms_summary("bob");
  ASSERT_TRUE(rooms);
  EXPECT_EQ(summary_of(*rooms, "general")->mentions, 0u);
}

TEST(ReadState, ARoomListIsPagedNewestActivityFirstWithEveryRoomOnce) {
  TempDir data;
  NodeProcess node(data.path(), {"--bridge", "off", "--metrics", "off"});
  client::Client ann(as_user(node, "ann"));
  std::vector<std::string> made;
  for (int i = 0; i < 7; ++i) {
    const std::string room = "room-" + std::to_string(i);
    ASSERT_TRUE(ann.create_room(room, "ann"));
    ASSERT_TRUE(ann.publish(room, "ann", "in " + room));
    made.push_back(room);
  }
  auto whole = ann.rooms_summary("ann");
  ASSERT_TRUE(whole) << whole.error().message;
  ASSERT_EQ(whole->summaries.size(), 7u);
  EXPECT_FALSE(whole->more);

  std::vector<transport::RoomSummary> paged;
  std::optional<transport::SummaryCursor> after;
  int pages = 0;
  for (bool more = true; more; ++pages) {
    auto page = ann.rooms_summary("ann", 3, after);
    ASSERT_TRUE(page) << page.error().message;
    ASSERT_LE(page->summaries.size(), 3u);
    std::vector<std::string> names;
    for (const auto& s : page->summaries) names.push_back(s.room);
    std::sort(names.begin(), names.end());
    EXPECT_EQ(page->rooms, names) << "a page's rooms are its summaries'";
    paged.insert(paged.end(), page->summaries.begin(), page->summaries.end());
    more = page->more;
    ASSERT_FALSE(page->summaries.empty());
    after = transport::SummaryCursor{page->summaries.back().last_ts_ms, page->summaries.back().room};
    ASSERT_LT(pages, 5);
  }
  EXPECT_EQ(pages, 3) << "3 + 3 + 1";
  EXPECT_EQ(paged, whole->summaries) << "the pages, one after another, are the whole list";
  // Past the end: nothing, and no more.
  auto past = ann.rooms_summary("ann", 3, after);
  ASSERT_TRUE(past);
  EXPECT_TRUE(past->summaries.empty());
  EXPECT_FALSE(past->more);
}

TEST(ReadState, AnOwnerMayShareTheMembersReadMarkersWhichStayPrivateOtherwise) {
  TempDir data;
  RestartableNode node(data);
  {
    client::Client ann(as_user(*node, "ann"));
    client::Client bob(as_user(*node, "bob"));
    ASSERT_TRUE(ann.create_room("team", "ann"));
    ASSERT_TRUE(bob.join("team", "bob"));
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(ann.publish("team", "ann", "m" + std::to_string(i)));
    ASSERT_TRUE(bob.mark_read("team", "bob", 3));

    auto hidden = bob.read_markers("team");
    ASSERT_FALSE(hidden);
    EXPECT_EQ(hidden.error().code, errc::forbidden) << "private until an owner shares them";
    auto not_owner = bob.set_receipts("team", true);
    ASSERT_FALSE(not_owner);
    EXPECT_EQ(not_owner.error().code, errc::forbidden);
    auto on = ann.set_receipts("team", true);
    ASSERT_TRUE(on) << on.error().message;
    EXPECT_TRUE(*on);
    auto shown = bob.read_markers("team");
    ASSERT_TRUE(shown) << shown.error().message;
    EXPECT_EQ(shown->markers, (std::vector<transport::ReadMarker>{{"ann", 5}, {"bob", 3}}));
    client::Client cat(as_user(*node, "cat"));
    auto outsider = cat.read_markers("team");
    ASSERT_FALSE(outsider);
    EXPECT_EQ(outsider.error().code, errc::not_member);
  }
  // The setting is stored: after kill -9 the markers are still shared.
  node.kill_and_restart();
  client::Client bob(as_user(*node, "bob"));
  auto shown = bob.read_markers("team");
  ASSERT_TRUE(shown) << shown.error().message;
  EXPECT_EQ(shown->markers, (std::vector<transport::ReadMarker>{{"ann", 5}, {"bob", 3}}));
  client::Client ann(as_user(*node, "ann"));
  auto off = ann.set_receipts("team", false);
  ASSERT_TRUE(off);
  EXPECT_TRUE(*off);
  EXPECT_FALSE(bob.read_markers("team"));
}

TEST(ReadState, AClientFollowingAUsersReadsLearnsWhatTheirOtherDeviceRead) {
  TempDir data;
  NodeProcess node(data.path(), {"--bridge", "off", "--metrics", "off"});
  client::Client phone(as_user(node, "bob"));
  client::Client laptop(as_user(node, "bob"));
  client::Client ann(as_user(node, "ann"));
  ASSERT_TRUE(ann.create_room("general", "ann"));
  ASSERT_TRUE(phone.join("general", "bob"));
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(ann.publish("general", "ann", "m" + std::to_string(i)));
  ASSERT_TRUE(laptop.follow_reads("bob"));
  ASSERT_TRUE(laptop.follow_reads("ann"));
  // A subscription takes effect once the node has it: wait until a marker move shows.
  std::optional<transport::ReadEvent> seen;
  for (std::uint64_t seq = 1; seq <= 4 && !seen; ++seq) {
    ASSERT_TRUE(phone.mark_read("general", "bob", seq));
    seen = laptop.next_read(std::chrono::milliseconds(500));
  }
  ASSERT_TRUE(seen) << "the laptop learns what the phone read";
  EXPECT_EQ(seen->user, "bob");
  EXPECT_EQ(seen->room, "general");
  // Every move after it shows, in order, up to the last.
  ASSERT_TRUE(phone.mark_read("general", "bob", 4));
  std::uint64_t at = seen->seq;
  while (at < 4) {
    auto moved = laptop.next_read(std::chrono::seconds(10));
    ASSERT_TRUE(moved) << "the move to 4";
    EXPECT_GT(moved->seq, at) << "markers only move forward";
    at = moved->seq;
  }
  EXPECT_EQ(at, 4u);
  // An older seq moves nothing, and nothing is announced for it; nor for ann's own message
  // (her devices see the message).
  ASSERT_TRUE(phone.mark_read("general", "bob", 2));
  ASSERT_TRUE(ann.publish("general", "ann", "m4"));
  ASSERT_TRUE(phone.mark_read("general", "bob", 5));
  auto moved = laptop.next_read(std::chrono::seconds(10));
  ASSERT_TRUE(moved);
  EXPECT_EQ(moved->seq, 5u) << "the next event is the next move";
  EXPECT_EQ(moved->user, "bob");
  laptop.unfollow_reads("bob");
  EXPECT_FALSE(laptop.next_read(std::chrono::milliseconds(0)));
}
