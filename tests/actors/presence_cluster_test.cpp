// Presence on nodes of several (actors/presence_cluster.cpp): presence actors as pure
// handlers with a simulated clock, and a simulated network between them that can
// lose messages, refuse them (no connection) and lose whole nodes.
#include <deque>
#include <set>

#include <gtest/gtest.h>

#include "switchboard/actors/membership.hpp"
#include "switchboard/actors/presence.hpp"
#include "switchboard/transport/codec.hpp"

using namespace switchboard;
using namespace switchboard::actors;
using namespace switchboard::transport;
using namespace std::chrono_literals;
using Kind = PresenceEvent::Kind;
namespace ps = switchboard::actors::presence_sync;

namespace {

constexpr auto kBeat = 100ms;
constexpr unsigned kMisses = 3;

persistence::Snapshot rooms(std::map<std::string, std::vector<std::string>> members) {
  persistence::Snapshot s;
  for (auto& [room, users] : members) {
    auto& state = s.rooms[room];
    for (const auto& user : users) state.members.emplace(user, Role::member);
  }
  return s;
}

std::vector<std::string> names(const WhoOk& who) {
  std::vector<std::string> out;
  for (const auto& u : who.users) out.push_back(u.user);
  return out;
}

/// Nodes a, b, c. Room "lobby" (ann, bob) belongs to c, "dev" (ann) to a.
class Net {
 public:
  Net() {
    for (const auto& name : all_) start(name);
    settle();
  }

  struct NodeState {
    std::unique_ptr<Presence> presence;
    std::map<std::uint64_t, SteadyClock::time_point> timers;
    std::vector<PresenceEvent> events;
    std::uint64_t incarnation = 0;
  };

  /// Starts (or restarts, with nothing remembered) node `name`.
  void start(const std::string& name) {
    PresenceOptions options;
    std::vector<std::string> others;
    for (const auto& n : all_)
      if (n != name) others.push_back(n);
    options.cluster = PresenceCluster{name, others, router::PeerOptions{kBeat, kMisses, 1000ms}, ++incarnations_};
    persistence::Snapshot snapshot;
    if (name == "c") snapshot = rooms({{"lobby", {"ann", "bob"}}});
    if (name == "a") snapshot = rooms({{"dev", {"ann"}}});
    NodeState& node = nodes_[name];
    node = NodeState{std::make_unique<Presence>(options, snapshot), {}, {}, incarnations_};
    down_.erase(name);
    Effects fx;
    node.presence->on_start({}, {}, now, fx);
    carry_out(name, fx);
  }
  /// A clean stop: the node says goodbye, then is gone.
  void stop(const std::string& name) {
    Effects fx;
    nodes_[name].presence->on_stop(now, fx);
    carry_out(name, fx);
    deliver();
    kill(name);
  }
  /// The node's process is gone: nothing reaches it, and sends to it fail.
  void kill(const std::string& name) {
    down_.insert(name);
    nodes_[name].presence.reset();
    std::erase_if(wire_, [&](const Packet& p) { return p.to == name || p.from == name; });
  }

  PresenceReplyBody call(const std::string& node, PresenceRequestBody body) {
    Effects fx;
    std::string frame = encode_presence_request({++id_, std::move(body)});
    nodes_[node].presence->on_message(Inbound{Inbound::Via::mailbox, "client", {frame}}, now, fx);
    PresenceReplyBody reply;
    for (const auto& e : fx.list())
      if (auto* r = std::get_if<Effects::Reply>(&e)) reply = decode_presence_reply(r->payload, Limits{})->body;
    carry_out(node, fx);
    return reply;
  }
  /// chat on `node` made a membership change durable.
  void member(const std::string& node, const std::string& room, const std::string& user, bool joined) {
    Effects fx;
    std::string frame = encode(MembershipChange{room, user, joined});
    nodes_[node].presence->on_message(Inbound{Inbound::Via::internal, "chat", {frame}}, now, fx);
    carry_out(node, fx);
  }
  WhoOk who(const std::string& node, const std::string& room) { return std::get<WhoOk>(call(node, Who{room})); }
  UserStatusOk status(const std::string& node, const std::string& user) {
    return std::get<UserStatusOk>(call(node, UserStatus{user}));
  }
  void open(const std::string& node, const std::string& session, const std::string& user) {
    ASSERT_TRUE(std::holds_alternative<SessionOpenOk>(call(node, SessionOpen{session, user})));
  }

  /// Delivers everything on the wire, and what that sends, until it is quiet.
  void deliver() {
    while (!wire_.empty()) {
      Packet p = std::move(wire_.front());
      wire_.pop_front();
      if (down_.count(p.to)) continue;
      Effects fx;
      nodes_[p.to].presence->on_message(Inbound{Inbound::Via::node, p.from, {p.payload}}, now, fx);
      carry_out(p.to, fx);
    }
  }
  /// Moves the clock by `by` in steps, firing due timers and delivering as it goes.
  void advance(std::chrono::milliseconds by) {
    const auto until = now.steady + by;
    while (true) {
      deliver();
      std::optional<std::pair<SteadyClock::time_point, std::pair<std::string, std::uint64_t>>> next;
      for (auto& [name, node] : nodes_)
        if (node.presence)
          for (auto& [id, at] : node.timers)
            if (!next || at < next->first) next = {at, {name, id}};
      if (!next || next->first > until) break;
      now.steady = std::max(now.steady, next->first);
      now.wall_ms += 1;
      auto& [name, id] = next->second;
      nodes_[name].timers.erase(id);
      Effects fx;
      nodes_[name].presence->on_timer(id, now, fx);
      carry_out(name, fx);
    }
    now.steady = until;
  }
  /// A few heartbeats: enough for every node to have asked for and applied snapshots.
  void settle() { advance(3 * kBeat); }

  std::vector<PresenceEvent> take_events(const std::string& node) { return std::exchange(nodes_[node].events, {}); }
  Presence& presence(const std::string& node) { return *nodes_[node].presence; }

  /// The next `count` sync messages from `from` to `to` are lost without a trace (as
  /// in a connection that broke after they were queued).
  void lose(const std::string& from, const std::string& to, int count) { losses_[{from, to}] = count; }
  /// Sends from `from` to `to` fail at once (no connection), until healed.
  void cut(const std::string& from, const std::string& to) { cuts_.insert({from, to}); }
  void heal(const std::string& from, const std::string& to) { cuts_.erase({from, to}); }

  Now now{SteadyClock::time_point{} + 1h, 1'700'000'000'000};

 private:
  struct Packet { std::string from, to, payload; };

  void carry_out(const std::string& name, Effects& fx) {
    NodeState& node = nodes_[name];
    std::vector<Effects::Effect> effects = fx.list();
    fx.clear();
    for (auto& e : effects) {
      if (auto* p = std::get_if<Effects::Publish>(&e)) node.events.push_back(*decode_presence_event(p->payload, Limits{}));
      if (auto* t = std::get_if<Effects::Timer>(&e)) node.timers[t->id] = t->at;
      if (auto* s = std::get_if<Effects::Send>(&e)) {
        ASSERT_EQ(s->actor.substr(0, 1), "@");
        const std::string to = s->actor.substr(1);
        if (down_.count(to) || cuts_.count({name, to})) {  // the runtime hands it back
          Effects back;
          const std::string sender = s->actor;
          node.presence->on_message(Inbound{Inbound::Via::undeliverable, sender, {s->payload}}, now, back);
          carry_out(name, back);
          continue;
        }
        if (auto loss = losses_.find({name, to}); loss != losses_.end() && loss->second > 0) {
          --loss->second;
          continue;
        }
        wire_.push_back({name, to, s->payload});
      }
    }
  }

  std::vector<std::string> all_ = {"a", "b", "c"};
  std::map<std::string, NodeState> nodes_;
  std::deque<Packet> wire_;
  std::set<std::string> down_;
  std::set<std::pair<std::string, std::string>> cuts_;
  std::map<std::pair<std::string, std::string>, int> losses_;
  std::uint64_t incarnations_ = 100;
  std::uint64_t id_ = 0;
};

bool has_event(const std::vector<PresenceEvent>& events, const std::string& room, Kind kind, const std::string& user) {
  for (const auto& e : events)
    if (e.room == room && e.kind == kind && e.user == user) return true;
  return false;
}

}  // namespace

TEST(PresenceCluster, NodesLearnEachOthersRoomsAtStart) {
  Net net;
  for (const char* node : {"a", "b", "c"}) {
    EXPECT_TRUE(net.who(node, "lobby").users.empty()) << node;
    EXPECT_EQ(net.presence(node).synced_with().size(), 2u) << node << " has applied both others' snapshots";
  }
  // Typing in a room another node owns is checked against its members there.
  net.open("a", "s-ann", "ann");
  net.open("a", "s-dan", "dan");
  EXPECT_TRUE(std::holds_alternative<TypingOk>(net.call("a", Typing{"s-ann", "lobby"})));
  auto refused = net.call("a", Typing{"s-dan", "lobby"});
  ASSERT_TRUE(std::holds_alternative<ErrorReply>(refused));
  EXPECT_EQ(std::get<ErrorReply>(refused).code, errc::not_member);
}

TEST(PresenceCluster, AUserOnlineOnOneNodeIsOnlineOnEvery) {
  Net net;
  for (const char* node : {"a", "b", "c"}) net.take_events(node);
  net.open("a", "s1", "ann");
  net.deliver();
  for (const char* node : {"a", "b", "c"}) {
    EXPECT_EQ(names(net.who(node, "lobby")), std::vector<std::string>{"ann"}) << node;
    EXPECT_TRUE(net.status(node, "ann").online) << node;
    auto events = net.take_events(node);
    EXPECT_TRUE(has_event(events, "lobby", Kind::online, "ann")) << "every node publishes it for its subscribers: " << node;
    EXPECT_TRUE(has_event(events, "dev", Kind::online, "ann")) << node;
  }
  ASSERT_TRUE(std::holds_alternative<SessionCloseOk>(net.call("a", SessionClose{"s1"})));
  net.deliver();
  for (const char* node : {"a", "b", "c"}) {
    EXPECT_TRUE(net.who(node, "lobby").users.empty()) << node;
    EXPECT_TRUE(has_event(net.take_events(node), "lobby", Kind::offline, "ann")) << node;
  }
}

TEST(PresenceCluster, OfflineOnlyOnceTheLastNodeWithASessionHasNone) {
  Net net;
  net.open("a", "s1", "ann");
  net.open("b", "s2", "ann");
  net.deliver();
  for (const char* node : {"a", "b", "c"}) net.take_events(node);
  ASSERT_TRUE(std::holds_alternative<SessionCloseOk>(net.call("a", SessionClose{"s1"})));
  net.deliver();
  for (const char* node : {"a", "b", "c"}) {
    EXPECT_TRUE(net.status(node, "ann").online) << "ann still has a session on b: " << node;
    EXPECT_TRUE(net.take_events(node).empty()) << node;
  }
  ASSERT_TRUE(std::holds_alternative<SessionCloseOk>(net.call("b", SessionClose{"s2"})));
  net.deliver();
  for (const char* node : {"a", "b", "c"}) {
    EXPECT_FALSE(net.status(node, "ann").online) << node;
    EXPECT_TRUE(has_event(net.take_events(node), "lobby", Kind::offline, "ann")) << node;
  }
}

TEST(PresenceCluster, TheLatestStatusSetOnAnyNodeIsShownEverywhere) {
  Net net;
  net.open("a", "s1", "ann");
  net.open("b", "s2", "ann");
  net.now.wall_ms += 10;
  ASSERT_TRUE(std::holds_alternative<SetStatusOk>(net.call("a", SetStatus{"s1", Availability::busy, "in a call"})));
  net.deliver();
  net.now.wall_ms += 10;
  ASSERT_TRUE(std::holds_alternative<SetStatusOk>(net.call("b", SetStatus{"s2", Availability::away, "lunch"})));
  net.deliver();
  for (const char* node : {"a", "b", "c"}) {
    auto s = net.status(node, "ann");
    EXPECT_EQ(s.status, Availability::away) << node;
    EXPECT_EQ(s.text, "lunch") << node;
  }
  // b's sessions end: what a set is shown again, everywhere.
  ASSERT_TRUE(std::holds_alternative<SessionCloseOk>(net.call("b", SessionClose{"s2"})));
  net.deliver();
  for (const char* node : {"a", "b", "c"}) {
    auto s = net.status(node, "ann");
    EXPECT_TRUE(s.online) << node;
    EXPECT_EQ(s.status, Availability::busy) << node;
    EXPECT_TRUE(has_event(net.take_events(node), "lobby", Kind::status, "ann")) << node;
  }
}

TEST(PresenceCluster, MembersOfRoomsOwnedElsewhereAreShared) {
  Net net;
  net.open("b", "s-dan", "dan");
  net.deliver();
  EXPECT_TRUE(net.who("a", "lobby").users.empty()) << "dan is not a member yet";
  net.member("c", "lobby", "dan", true);  // c's chat: dan joined lobby
  net.deliver();
  for (const char* node : {"a", "b", "c"}) {
    EXPECT_EQ(names(net.who(node, "lobby")), std::vector<std::string>{"dan"}) << node;
    EXPECT_TRUE(has_event(net.take_events(node), "lobby", Kind::join, "dan")) << node;
  }
  // Typing on b, where dan's session is, shows in lobby on every node.
  ASSERT_TRUE(std::holds_alternative<TypingOk>(net.call("b", Typing{"s-dan", "lobby"})));
  net.deliver();
  for (const char* node : {"a", "b", "c"}) {
    EXPECT_EQ(net.who(node, "lobby").typing, std::vector<std::string>{"dan"}) << node;
    EXPECT_TRUE(has_event(net.take_events(node), "lobby", Kind::typing, "dan")) << node;
  }
  net.member("c", "lobby", "dan", false);
  net.deliver();
  for (const char* node : {"a", "b", "c"}) EXPECT_TRUE(net.who(node, "lobby").users.empty()) << node;
}

TEST(PresenceCluster, ALostChangeIsRepairedByTheNextBeat) {
  Net net;
  net.lose("a", "b", 1);
  net.open("a", "s1", "ann");
  net.deliver();
  ASSERT_FALSE(net.status("b", "ann").online) << "the change to b was lost (the set-up of this test)";
  EXPECT_TRUE(net.status("c", "ann").online);
  net.advance(2 * kBeat);
  EXPECT_TRUE(net.status("b", "ann").online) << "b saw a's beat ahead of what it applied and asked again";
  EXPECT_TRUE(has_event(net.take_events("b"), "lobby", Kind::online, "ann"));
  // Later changes apply in order again.
  ASSERT_TRUE(std::holds_alternative<SessionCloseOk>(net.call("a", SessionClose{"s1"})));
  net.deliver();
  EXPECT_FALSE(net.status("b", "ann").online);
}

TEST(PresenceCluster, ANodeThatGoesDownTakesItsUsersOfflineAndComesBackClean) {
  Net net;
  net.open("a", "s1", "ann");
  net.open("b", "s2", "bob");
  net.deliver();
  for (const char* node : {"b", "c"}) net.take_events(node);
  net.kill("a");
  net.advance((kMisses + 1) * kBeat);
  for (const char* node : {"b", "c"}) {
    EXPECT_FALSE(net.status(node, "ann").online) << "a is down: its sessions are gone with it: " << node;
    EXPECT_TRUE(net.status(node, "bob").online) << node;
    EXPECT_TRUE(has_event(net.take_events(node), "lobby", Kind::offline, "ann")) << node;
    EXPECT_EQ(names(net.who(node, "dev")), std::vector<std::string>{}) << "a's rooms stay known: " << node;
  }
  net.start("a");  // a new incarnation, with no sessions
  net.settle();
  EXPECT_TRUE(net.status("a", "bob").online) << "a learned b's users from a snapshot";
  EXPECT_FALSE(net.status("b", "ann").online);
  net.open("a", "s3", "ann");
  net.deliver();
  EXPECT_EQ(names(net.who("c", "lobby")), (std::vector<std::string>{"ann", "bob"}));
  EXPECT_EQ(net.presence("b").synced_with(), (std::vector<std::string>{"a", "c"}));
}

TEST(PresenceCluster, ANodeThatStopsTakesItsUsersOfflineAtOnce) {
  Net net;
  net.open("a", "s1", "ann");
  net.deliver();
  ASSERT_TRUE(net.status("b", "ann").online);
  net.take_events("b");
  net.stop("a");  // no clock moves: no heartbeat is missed
  EXPECT_FALSE(net.status("b", "ann").online);
  EXPECT_FALSE(net.status("c", "ann").online);
  EXPECT_TRUE(has_event(net.take_events("b"), "lobby", Kind::offline, "ann"));
  net.start("a");
  net.settle();
  EXPECT_EQ(net.presence("b").synced_with(), (std::vector<std::string>{"a", "c"})) << "back after its restart";
}

TEST(PresenceCluster, ARestartFasterThanTheMissesStillDropsWhatTheOldProcessHad) {
  Net net;
  net.open("a", "s1", "ann");
  net.deliver();
  ASSERT_TRUE(net.status("c", "ann").online);
  net.kill("a");
  net.start("a");  // back before anyone missed a beat: only its incarnation tells
  net.settle();
  EXPECT_FALSE(net.status("c", "ann").online) << "the snapshot of the new process replaced the old one's users";
  EXPECT_FALSE(net.status("b", "ann").online);
}

TEST(PresenceCluster, ANodeThatCannotBeReachedIsForgottenUntilItAnswers) {
  Net net;
  net.open("a", "s1", "ann");
  net.deliver();
  net.cut("b", "a");  // b's sends to a find no connection
  net.advance(kBeat);
  EXPECT_FALSE(net.status("b", "ann").online) << "a unreachable from b: a's users are not shown by b";
  net.heal("b", "a");
  net.settle();
  EXPECT_TRUE(net.status("b", "ann").online) << "a's next beat made b ask for a snapshot again";
}

TEST(PresenceCluster, ASnapshotLargerThanOnePartArrivesWhole) {
  Net net;
  const int users = 3 * static_cast<int>(ps::kSnapshotPartEntries) / 2;
  for (int i = 0; i < users; ++i) {
    net.member("a", "big", "u" + std::to_string(i), true);
    net.open("a", "s" + std::to_string(i), "u" + std::to_string(i));
  }
  net.deliver();
  net.kill("b");
  net.start("b");  // learns everything from a's snapshot: several parts
  net.settle();
  EXPECT_EQ(net.who("b", "big").users.size(), static_cast<std::size_t>(users));
  EXPECT_EQ(net.presence("b").synced_with(), (std::vector<std::string>{"a", "c"}));
}

TEST(PresenceCluster, MessagesFromStrangersAndBadFramesAreIgnored) {
  Net net;
  Effects fx;
  std::string beat = ps::encode(ps::Beat{7, 7});
  net.presence("a").on_message(Inbound{Inbound::Via::node, "mallory", {beat}}, net.now, fx);
  EXPECT_TRUE(fx.empty()) << "not a node of the topology";
  for (std::string bad : {std::string("\x81\xa2op\xa3zzz", 8), std::string("garbage"), ps::encode(ps::Beat{}) + "x"}) {
    net.presence("a").on_message(Inbound{Inbound::Via::node, "b", {bad}}, net.now, fx);
    EXPECT_TRUE(fx.empty());
  }
  net.open("b", "s1", "bob");
  net.deliver();
  EXPECT_TRUE(net.status("a", "bob").online) << "a goes on applying b's changes";
}

TEST(PresenceSync, FramesRoundTripAndBadOnesAreRefused) {
  Limits limits;
  ps::SnapshotPart part{1, 2, 3, false, {{"ann", true, Availability::busy, "x", 9}}, {{"lobby", {"ann", "bob"}}}};
  auto back = ps::decode(ps::encode(part), limits);
  ASSERT_TRUE(back) << back.error().message;
  auto& p = std::get<ps::SnapshotPart>(*back);
  EXPECT_EQ(p.part, 3u);
  EXPECT_FALSE(p.last);
  EXPECT_EQ(p.users, part.users);
  EXPECT_EQ(p.rooms[0].members, (std::vector<std::string>{"ann", "bob"}));

  auto change = ps::decode(ps::encode(ps::UserChange{5, 6, {"ann", false, Availability::away, "t", 3}}), limits);
  ASSERT_TRUE(change);
  EXPECT_EQ(std::get<ps::UserChange>(*change).state.status, Availability::away);

  EXPECT_EQ(ps::decode("\x81\xa2op\xa3zzz", limits).error().code, errc::unknown_op);
  FrameBuffer buffer;
  Packer pk(buffer);
  pk.pack_map(3);
  pack_field(pk, "op", std::string_view("beat"));
  pack_field(pk, "inc", std::string_view("one"));
  pack_field(pk, "seq", 1);
  EXPECT_EQ(ps::decode(to_string(buffer), limits).error().code, errc::bad_field);
}

TEST(PresenceSync, SnapshotsSplitIntoBoundedPartsThatKeepEveryEntry) {
  std::vector<ps::UserState> users;
  for (int i = 0; i < 700; ++i) users.push_back({"u" + std::to_string(i), true, Availability::online, "", 1});
  std::vector<std::string> members;
  for (int i = 0; i < 1000; ++i) members.push_back("m" + std::to_string(i));
  auto parts = ps::split_snapshot(4, 9, users, {{"empty", {}}, {"big", members}});
  std::size_t user_count = 0, member_count = 0;
  bool saw_empty = false;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    std::size_t entries = parts[i].users.size();
    for (const auto& r : parts[i].rooms) {
      entries += std::max<std::size_t>(r.members.size(), 1);
      member_count += r.members.size();
      saw_empty |= r.room == "empty";
    }
    user_count += parts[i].users.size();
    EXPECT_LE(entries, ps::kSnapshotPartEntries);
    EXPECT_EQ(parts[i].part, i);
    EXPECT_EQ(parts[i].last, i + 1 == parts.size());
    EXPECT_EQ(parts[i].seq, 9u);
  }
  EXPECT_EQ(user_count, 700u);
  EXPECT_EQ(member_count, 1000u);
  EXPECT_TRUE(saw_empty) << "a room with no members is still sent";
  EXPECT_EQ(parts.size(), 4u);  // 1701 entries, 512 a part
}

TEST(PresenceCluster, EveryNodeReportsTheLatestEndOfASessionOnAnyNodeAsLastSeen) {
  Net net;
  net.open("a", "s1", "ann");
  net.open("b", "s2", "ann");
  net.deliver();
  net.now.wall_ms += 10;
  ASSERT_TRUE(std::holds_alternative<SessionCloseOk>(net.call("b", SessionClose{"s2"})));
  net.deliver();
  for (const char* node : {"a", "b", "c"}) {
    EXPECT_TRUE(net.status(node, "ann").online) << node;
    EXPECT_EQ(net.status(node, "ann").last_seen, std::nullopt) << "online on a: " << node;
  }
  net.now.wall_ms += 10;
  const std::uint64_t closed_at = net.now.wall_ms;
  ASSERT_TRUE(std::holds_alternative<SessionCloseOk>(net.call("a", SessionClose{"s1"})));
  net.deliver();
  for (const char* node : {"a", "b", "c"}) {
    EXPECT_FALSE(net.status(node, "ann").online) << node;
    EXPECT_EQ(net.status(node, "ann").last_seen, closed_at) << node;
  }
  // A session that expires: seen last at its last heartbeat, on every node.
  const std::uint64_t opened_at = net.now.wall_ms;
  net.open("c", "s3", "bob");
  net.advance(std::chrono::milliseconds(PresenceOptions{}.session_ttl) + kBeat);
  for (const char* node : {"a", "b", "c"}) {
    EXPECT_FALSE(net.status(node, "bob").online) << node;
    EXPECT_EQ(net.status(node, "bob").last_seen, opened_at) << node;
  }
}

TEST(PresenceCluster, NodesThatMissedTheChangeOrStartedAfterItLearnLastSeenFromSnapshots) {
  Net net;
  net.open("a", "s1", "ann");
  net.deliver();
  net.lose("a", "b", 1);
  net.now.wall_ms += 500;
  const std::uint64_t closed_at = net.now.wall_ms;
  ASSERT_TRUE(std::holds_alternative<SessionCloseOk>(net.call("a", SessionClose{"s1"})));
  net.deliver();
  ASSERT_TRUE(net.status("b", "ann").online) << "the change to b was lost (the set-up of this test)";
  net.advance(2 * kBeat);
  EXPECT_FALSE(net.status("b", "ann").online);
  EXPECT_EQ(net.status("b", "ann").last_seen, closed_at) << "a's snapshot carried it";
  net.kill("c");
  net.start("c");  // nothing remembered
  net.settle();
  EXPECT_EQ(net.status("c", "ann").last_seen, closed_at) << "learned from the others' snapshots";
}

TEST(PresenceCluster, UsersOfANodeThatStopsAreLastSeenWhenItSaidGoodbye) {
  Net net;
  net.open("a", "s1", "ann");
  net.deliver();
  net.now.wall_ms += 1000;
  const std::uint64_t stopped_at = net.now.wall_ms;
  net.stop("a");
  net.now.wall_ms += 1000;
  for (const char* node : {"b", "c"}) EXPECT_EQ(net.status(node, "ann").last_seen, stopped_at) << node;
  net.start("a");
  net.settle();
  EXPECT_EQ(net.status("a", "ann").last_seen, stopped_at) << "the restarted node learned it from the others";
  // The time is the stopping node's, not when the goodbye arrived.
  net.open("c", "s2", "bob");
  net.deliver();
  Effects fx;
  net.presence("b").on_message(Inbound{Inbound::Via::node, "c", {ps::encode(ps::Bye{net.now.wall_ms - 70})}}, net.now,
                               fx);
  EXPECT_EQ(net.status("b", "bob").last_seen, net.now.wall_ms - 70);
}

TEST(PresenceCluster, UsersOfANodeThatDiesAreLastSeenAboutWhenTheOthersNoticed) {
  Net net;
  const std::uint64_t opened_at = net.now.wall_ms;
  net.open("a", "s1", "ann");
  net.deliver();
  net.kill("a");
  net.advance((kMisses + 1) * kBeat);
  std::uint64_t latest = 0;
  for (const char* node : {"b", "c"}) {
    auto seen = net.status(node, "ann").last_seen;
    ASSERT_TRUE(seen) << node;
    EXPECT_GT(*seen, opened_at) << node;
    EXPECT_LE(*seen, net.now.wall_ms) << node;
    latest = std::max(latest, *seen);
  }
  net.start("a");
  net.settle();
  EXPECT_EQ(net.status("a", "ann").last_seen, latest) << "the latest of what the others noticed";
}

TEST(PresenceCluster, UsersOfANodeThatRestartedUnnoticedAreLastSeenWhenTheNewProcessSaidSo) {
  Net net;
  net.open("a", "s1", "ann");
  net.deliver();
  const std::uint64_t learned = net.now.wall_ms - 5000;  // what a new process of a heard from others
  net.now.wall_ms += 1000;
  // a restarted (incarnation 999) before anyone missed a beat; its snapshot has ann
  // offline, with an older last seen than her session on the old process shows.
  Effects fx;
  ps::SnapshotPart part{999, 0, 0, true, {{"ann", false, Availability::online, "", 0, learned}}, {}};
  net.presence("b").on_message(Inbound{Inbound::Via::node, "a", {ps::encode(part)}}, net.now, fx);
  auto status = net.status("b", "ann");
  EXPECT_FALSE(status.online);
  EXPECT_EQ(status.last_seen, net.now.wall_ms) << "online on the old process until the new one said otherwise";
}

TEST(PresenceSync, LastSeenAndTheTimeOfAByeRoundTripAndFramesWithoutThemStillRead) {
  Limits limits;
  ps::UserState gone{"ann", false, Availability::online, "", 3, 1763900000000};
  auto change = ps::decode(ps::encode(ps::UserChange{5, 6, gone}), limits);
  ASSERT_TRUE(change) << change.error().message;
  EXPECT_EQ(std::get<ps::UserChange>(*change).state, gone);
  ps::SnapshotPart part{1, 2, 0, true, {{"bob", true, Availability::busy, "x", 9}, gone}, {}};
  auto snapshot = ps::decode(ps::encode(part), limits);
  ASSERT_TRUE(snapshot) << snapshot.error().message;
  EXPECT_EQ(std::get<ps::SnapshotPart>(*snapshot).users, part.users);
  auto bye = ps::decode(ps::encode(ps::Bye{1763900000001}), limits);
  ASSERT_TRUE(bye);
  EXPECT_EQ(std::get<ps::Bye>(*bye).at_ms, 1763900000001u);

  // A node of an earlier version: no last_seen in a state, no time in a bye.
  FrameBuffer buffer;
  Packer pk(buffer);
  pk.pack_map(4);
  pack_field(pk, "op", std::string_view("user"));
  pack_field(pk, "inc", 5);
  pack_field(pk, "seq", 6);
  pk.pack(std::string_view("state"));
  pk.pack_map(5);
  pack_field(pk, "user", std::string_view("ann"));
  pack_field(pk, "online", false);
  pack_field(pk, "status", std::string_view("online"));
  pack_field(pk, "text", std::string_view(""));
  pack_field(pk, "at", 3);
  auto old = ps::decode(to_string(buffer), limits);
  ASSERT_TRUE(old) << old.error().message;
  EXPECT_EQ(std::get<ps::UserChange>(*old).state.last_seen, std::nullopt);
  auto old_bye = ps::decode(std::string("\x81\xa2op\xa3" "bye", 8), limits);
  ASSERT_TRUE(old_bye) << old_bye.error().message;
  EXPECT_EQ(std::get<ps::Bye>(*old_bye).at_ms, std::nullopt);
}
