// The chat actor on a node of several, as a pure handler: requests in, effects out,
// a simulated clock, no sockets. This node is "a"; "b" and "c" are the other nodes,
// played by the test through the frames of router/peer_frames.hpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <tuple>

#include "effects_helpers.hpp"
#include "switchboard/actors/chat.hpp"
#include "switchboard/actors/metrics.hpp"
#include "switchboard/router/peer_frames.hpp"
#include "switchboard/router/placement.hpp"
#include "switchboard/transport/codec.hpp"

using namespace switchboard;
using namespace switchboard::actors;
using namespace switchboard::transport;
using namespace std::chrono_literals;
using router::PeerKind;

namespace {

std::vector<router::ShardConfig> shards() { return {{"s1", "a"}, {"s2", "b"}, {"s3", "c"}}; }

/// The `nth` room name ("room-<i>") that the topology places on `node`.
std::string owned_by(const std::string& node, int nth = 0) {
  router::RoomPlacement placement(shards());
  for (int i = 0; i < 100'000; ++i) {
    std::string name = "room-" + std::to_string(i);
    if (placement.owner_of(name).owner == node && nth-- == 0) return name;
  }
  ADD_FAILURE() << "no room found for node " << node;
  return {};
}

router::PeerOptions peer_options(std::chrono::milliseconds request_timeout = 60s) {
  router::PeerOptions o;
  o.heartbeat = 1000ms;
  o.misses = 3;
  o.request_timeout = request_timeout;
  return o;
}

ChatOptions cluster_options(router::PeerOptions peers, std::vector<router::ShardConfig> topology) {
  ChatOptions o;
  o.node_name = "a";
  o.cluster = ChatCluster{"a", std::move(topology), {"b", "c"}, peers};
  return o;
}

ChatOptions with_metrics(ChatOptions o, ChatMetrics* metrics) {
  o.metrics = metrics;
  return o;
}

/// A peer frame a chat sent (Effects::Send to "@node"), decoded.
struct Sent {
  std::string to;
  PeerKind kind;
  std::uint64_t corr;
  std::string body;
};

/// A reply a chat sent to a node caller (Effects::Reply{node=true}), decoded.
struct NodeReply {
  std::string to;
  PeerKind kind;
  std::uint64_t corr;
  std::string body;
};

/// Replies decoded as the client library does (client/client.cpp): a reply may be
/// large (a history page, a long room list).
Limits reply_limits() {
  Limits l;
  l.max_frame = 64u << 20;
  l.max_array = 1u << 20;
  return l;
}

errc error_code(const Reply& r) {
  return std::holds_alternative<ErrorReply>(r.body) ? std::get<ErrorReply>(r.body).code : errc::ok;
}

/// A store that has taken part in its shards before: a vote (term 1, the owner its
/// primary) for each shard that fails over and of which "a" is a member, where the
/// snapshot has none. Without one, a store with nothing of such a shard starts blank
/// (docs/REPLICATION.md, "A new shard, and a member that lost its data").
persistence::Snapshot established(persistence::Snapshot snapshot, const std::vector<router::ShardConfig>& topology) {
  for (const auto& shard : topology) {
    const bool member = shard.owner == "a" || std::find(shard.replicas.begin(), shard.replicas.end(), "a") != shard.replicas.end();
    if (member && shard.replicas.size() >= 2 && shard.ack == router::ShardConfig::Ack::replicated &&
        !snapshot.votes.count(shard.name) && !snapshot.logs.count(shard.name))
      snapshot.votes[shard.name] = persistence::ShardVote{shard.name, 1, shard.owner, shard.owner};
  }
  return snapshot;
}

struct Harness {
  explicit Harness(persistence::Snapshot snapshot = {}, router::PeerOptions peers = peer_options(),
                   std::vector<router::ShardConfig> topology = shards(), ChatMetrics* metrics = nullptr,
                   bool blank = false)
      : options(peers),
        chat(with_metrics(cluster_options(peers, topology), metrics), blank ? snapshot : established(snapshot, topology)) {
    chat.on_start({"inproc://chat"}, {"tcp://127.0.0.1:7401"}, now, fx);
    auto timers = take<Effects::Timer>();
    if (blank && !timers.empty()) {  // a blank seat's timer comes last
      blank_timer = timers.back();
      timers.pop_back();
    }
    EXPECT_EQ(timers.size(), 3u) << "on_start starts the heads timer, the retention timer, then the heartbeat timer";
    if (timers.size() == 3) heads_timer = timers.front().id;
    if (!timers.empty()) {
      heartbeat_timer = timers.back().id;
      next_beat = timers.back().at;
    }
  }
  ~Harness() {  // batches handed over to a persistence that never took them
    for (const auto& e : fx.list())
      if (auto* s = std::get_if<Effects::Send>(&e); s && s->actor == "persistence") (void)store::receive(s->payload);
  }
  Harness(const Harness&) = delete;

  // ---- what comes in --------------------------------------------------------------

  /// A client request on the mailbox; returns the request frame sent.
  std::string client(const std::string& peer, RequestBody body, std::uint64_t id = 0) {
    std::string frame = encode_request({id ? id : next_id++, std::move(body)});
    deliver(Inbound::Via::mailbox, peer, {frame});
    return frame;
  }
  /// A frame on the node mailbox from another node's DEALER (routing id `sender`).
  void node_in(const std::string& sender, const std::string& frame) { deliver(Inbound::Via::node, sender, {frame}); }
  /// A frame from another node on this chat's DEALER to it: a reply or a pong.
  void from_peer(const std::string& node, const std::string& frame) {
    deliver(Inbound::Via::peer, peer_actor(node), {frame});
  }
  void pong(const std::string& node, std::uint64_t corr = 0) { from_peer(node, router::encode_peer(PeerKind::pong, corr)); }
  void owner_replies(const std::string& node, std::uint64_t corr, const Reply& reply) {
    from_peer(node, router::encode_peer(PeerKind::reply, corr, encode_reply(reply)));
  }
  void undeliverable(const std::string& node, const std::string& frame) {
    deliver(Inbound::Via::undeliverable, peer_actor(node), {frame});
  }
  void feed(const std::string& node, const std::string& topic, const std::string& payload) {
    deliver(Inbound::Via::feed, node, {topic, payload});
  }
  void subscription(const std::string& frame) { deliver(Inbound::Via::subscription, "xpub", {frame}); }

  void deliver(Inbound::Via via, const std::string& sender, const std::vector<std::string>& frames) {
    Inbound in;
    in.via = via;
    in.sender = sender;
    for (const auto& f : frames) in.frames.push_back(f);
    chat.on_message(in, now, fx);
    chat.on_drained(now, fx);
  }

  /// The simulated clock moves on to the next heartbeat, which fires; `answering`
  /// nodes answer its pings with a pong.
  std::uint64_t heads_timer = 0;
  void beat(const std::vector<std::string>& answering = {}) {
    now.wall_ms += static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(next_beat - now.steady).count());
    now.steady = next_beat;
    chat.on_timer(heartbeat_timer, now, fx);
    auto timers = take<Effects::Timer>();
    ASSERT_EQ(timers.size(), 1u) << "every heartbeat starts the next";
    EXPECT_EQ(timers[0].id, heartbeat_timer);
    EXPECT_EQ(timers[0].at, now.steady + options.heartbeat);
    next_beat = timers[0].at;
    auto pings = take_sent(PeerKind::ping);
    for (const auto& node : answering) {
      auto it = std::find_if(pings.begin(), pings.end(), [&](const Sent& s) { return s.to == peer_actor(node); });
      ASSERT_NE(it, pings.end()) << "no ping to " << node;
      pong(node, it->corr);
    }
  }
  std::chrono::milliseconds since_start() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(now.steady - SteadyClock::time_point{});
  }

  // ---- what goes out ----------------------------------------------------------------

  template <class T>
  std::vector<T> take() {
    return switchboard::testing::take_effects<T>(fx);
  }
  /// Frames of `kind` sent to other nodes (and forgets them).
  std::vector<Sent> take_sent(PeerKind kind) {
    std::vector<Sent> out;
    Effects rest;
    for (const auto& e : fx.list()) {
      if (auto* s = std::get_if<Effects::Send>(&e); s && s->actor.starts_with('@')) {
        auto peer = router::decode_peer(s->payload);
        EXPECT_TRUE(peer) << "unreadable frame to " << s->actor;
        if (peer && peer->kind == kind) {
          out.push_back({s->actor, peer->kind, peer->corr, std::string(peer->body)});
          continue;
        }
      }
      rest.add(e);
    }
    fx = rest;
    return out;
  }
  std::vector<Sent> take_forwards() { return take_sent(PeerKind::forward); }
  /// Replies to clients (node=false), decoded, with the raw frame.
  struct ClientReply {
    std::string to;
    std::string frame;
    Reply reply;
  };
  std::vector<ClientReply> take_client_replies() {
    std::vector<ClientReply> out;
    Effects rest;
    for (const auto& e : fx.list()) {
      if (auto* r = std::get_if<Effects::Reply>(&e); r && !r->node) {
        auto d = decode_reply(r->payload, reply_limits());
        EXPECT_TRUE(d) << "unreadable reply";
        if (d) out.push_back({r->to, r->payload, *d});
        continue;
      }
      rest.add(e);
    }
    fx = rest;
    return out;
  }
  std::vector<NodeReply> take_node_replies() {
    std::vector<NodeReply> out;
    Effects rest;
    for (const auto& e : fx.list()) {
      if (auto* r = std::get_if<Effects::Reply>(&e); r && r->node) {
        auto peer = router::decode_peer(r->payload);
        EXPECT_TRUE(peer) << "unreadable node reply";
        if (peer) out.push_back({r->to, peer->kind, peer->corr, std::string(peer->body)});
        continue;
      }
      rest.add(e);
    }
    fx = rest;
    return out;
  }
  /// The batch chat sent to persistence, if any (and forgets the send).
  std::optional<store::Append> take_batch() {
    std::optional<store::Append> batch;
    Effects rest;
    for (const auto& e : fx.list()) {
      if (auto* s = std::get_if<Effects::Send>(&e); s && s->actor == "persistence" && !batch) {
        auto m = store::receive(s->payload);
        if (m && std::holds_alternative<store::Append>(*m)) {
          batch = std::get<store::Append>(*m);
          continue;
        }
      }
      rest.add(e);
    }
    fx = rest;
    return batch;
  }
  void confirm(std::uint64_t batch) {
    deliver(Inbound::Via::peer, "persistence", {store::encode(store::Appended{batch, Error{errc::ok, {}}})});
  }

  router::PeerOptions options;
  Now now{SteadyClock::time_point{}, 1'700'000'000'000};
  Effects fx;
  Chat chat;
  std::optional<Effects::Timer> blank_timer;
  std::uint64_t heartbeat_timer = 0;
  SteadyClock::time_point next_beat{};
  std::uint64_t next_id = 1;
};

persistence::Snapshot with_rooms(const std::vector<std::string>& names, const std::string& member = "ann") {
  persistence::Snapshot s;
  for (const auto& n : names) s.rooms[n] = persistence::RoomState{member, 1, 0, {{member, Role::owner}}};
  return s;
}

}  // namespace

// ---- heartbeats ------------------------------------------------------------------------

TEST(ChatForwarding, StartPingsEveryOtherNodeAndEveryHeartbeatPingsAgain) {
  Harness h;
  auto pings = h.take_sent(PeerKind::ping);
  std::vector<std::string> to;
  for (const auto& p : pings) to.push_back(p.to);
  std::sort(to.begin(), to.end());
  EXPECT_EQ(to, (std::vector<std::string>{"@b", "@c"}));
  EXPECT_EQ(h.next_beat, SteadyClock::time_point{} + 1000ms);
  EXPECT_TRUE(h.fx.empty());

  h.chat.on_timer(h.heartbeat_timer, Now{h.next_beat, h.now.wall_ms + 1000}, h.fx);
  EXPECT_EQ(h.take_sent(PeerKind::ping).size(), 2u);
  auto timers = h.take<Effects::Timer>();
  ASSERT_EQ(timers.size(), 1u);
  EXPECT_EQ(timers[0].at, SteadyClock::time_point{} + 2000ms);
  EXPECT_EQ(h.chat.peer_states(), (std::map<std::string, bool>{{"b", true}, {"c", true}}));
}

TEST(ChatForwarding, PingOnTheNodeMailboxIsAnsweredWithAPongWithTheSameCorr) {
  Harness h;
  h.fx.clear();
  h.node_in("dealer-of-b", router::encode_peer(PeerKind::ping, 0x0102030405060708ULL));
  auto replies = h.take_node_replies();
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0].to, "dealer-of-b");
  EXPECT_EQ(replies[0].kind, PeerKind::pong);
  EXPECT_EQ(replies[0].corr, 0x0102030405060708ULL);
  EXPECT_TRUE(replies[0].body.empty());
  EXPECT_TRUE(h.fx.empty()) << "a ping is answered and nothing else";
}

// ---- forwarding client requests -------------------------------------------------------

TEST(ChatForwarding, RequestForARoomOwnedElsewhereIsForwardedUnchangedAndTheReplyRelayedUnchanged) {
  Harness h;
  h.fx.clear();
  const std::string room = owned_by("b");
  const std::string request = h.client("client-1", Publish{room, "ann", "m1", "hello"}, 7);

  EXPECT_FALSE(h.take_batch()) << "a room of another node is not stored here";
  EXPECT_TRUE(h.take_client_replies().empty()) << "no answer before the owner's";
  auto forwards = h.take_forwards();
  ASSERT_EQ(forwards.size(), 1u);
  EXPECT_EQ(forwards[0].to, "@b");
  EXPECT_EQ(forwards[0].body, request) << "the client's frame, byte for byte";
  EXPECT_TRUE(h.fx.empty());
  EXPECT_FALSE(h.chat.idle()) << "a forwarded request is in flight";
  EXPECT_EQ(h.chat.stats().forwarded, 1u);

  const std::string reply = encode_reply({7, PublishOk{room, 1, 1'700'000'000'123, false}});
  h.from_peer("b", router::encode_peer(PeerKind::reply, forwards[0].corr, reply));
  auto replies = h.take_client_replies();
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0].to, "client-1");
  EXPECT_EQ(replies[0].frame, reply) << "the owner's reply, byte for byte";
  EXPECT_EQ(replies[0].reply.id, 7u);
  EXPECT_EQ(std::get<PublishOk>(replies[0].reply.body).seq, 1u);
  EXPECT_TRUE(h.fx.empty());
  EXPECT_TRUE(h.chat.idle());

  // The same reply again (a duplicate) has nobody waiting for it.
  h.from_peer("b", router::encode_peer(PeerKind::reply, forwards[0].corr, reply));
  EXPECT_TRUE(h.fx.empty());
}

TEST(ChatForwarding, EachRequestGoesToItsRoomsOwnerAndEachReplyToItsClient) {
  Harness h;
  h.fx.clear();
  const std::string rb = owned_by("b"), rc = owned_by("c"), rb2 = owned_by("b", 1);
  h.client("client-1", Join{rb, "ann"}, 1);
  h.client("client-2", Members{rc}, 2);
  h.client("client-3", LastSeq{rb2}, 3);
  auto forwards = h.take_forwards();
  ASSERT_EQ(forwards.size(), 3u);
  EXPECT_EQ(forwards[0].to, "@b");
  EXPECT_EQ(forwards[1].to, "@c");
  EXPECT_EQ(forwards[2].to, "@b");
  EXPECT_NE(forwards[0].corr, forwards[2].corr) << "two requests to one node need two numbers";

  // Answered out of order: each reply goes to the client whose request it answers.
  h.owner_replies("b", forwards[2].corr, {3, LastSeqOk{rb2, 9}});
  h.owner_replies("c", forwards[1].corr, {2, MembersOk{{"bob"}, {Role::member}}});
  h.owner_replies("b", forwards[0].corr, {1, JoinOk{true}});
  auto replies = h.take_client_replies();
  ASSERT_EQ(replies.size(), 3u);
  EXPECT_EQ(replies[0].to, "client-3");
  EXPECT_EQ(std::get<LastSeqOk>(replies[0].reply.body).seq, 9u);
  EXPECT_EQ(replies[1].to, "client-2");
  EXPECT_EQ(std::get<MembersOk>(replies[1].reply.body).members, (std::vector<std::string>{"bob"}));
  EXPECT_EQ(replies[2].to, "client-1");
  EXPECT_TRUE(std::get<JoinOk>(replies[2].reply.body).joined);
  EXPECT_TRUE(h.chat.idle());
}

TEST(ChatForwarding, AReplyFromANodeNotInTheTopologyIsIgnored) {
  Harness h;
  h.fx.clear();
  h.client("client-1", Members{owned_by("b")}, 1);
  auto forwards = h.take_forwards();
  ASSERT_EQ(forwards.size(), 1u);
  h.owner_replies("zz", forwards[0].corr, {1, MembersOk{{"mallory"}}});
  EXPECT_TRUE(h.take_client_replies().empty());
  h.owner_replies("b", forwards[0].corr, {1, MembersOk{{"ann"}}});
  auto replies = h.take_client_replies();
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(std::get<MembersOk>(replies[0].reply.body).members, (std::vector<std::string>{"ann"}));
}

// A reply is matched by its number and by the node it comes from: a reply from c
// carrying the number of a request waiting on b is not b's answer.
TEST(ChatForwarding, AReplyFromTheWrongNodeIsNotTakenForTheOwners) {
  Harness h;
  h.fx.clear();
  h.client("client-1", Members{owned_by("b")}, 1);
  auto forwards = h.take_forwards();
  ASSERT_EQ(forwards.size(), 1u);
  h.owner_replies("c", forwards[0].corr, {1, MembersOk{{"mallory"}}});
  EXPECT_TRUE(h.take_client_replies().empty()) << "c's reply taken for b's";
  h.owner_replies("b", forwards[0].corr, {1, MembersOk{{"ann"}}});
  auto replies = h.take_client_replies();
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(std::get<MembersOk>(replies[0].reply.body).members, (std::vector<std::string>{"ann"}));
}

// A chat's DEALERs to other nodes keep one routing id (the node's name) across
// restarts, and the other nodes hand it over to the new connection: so a late answer
// to a request of the previous process reaches the new one. Its numbers start at
// random, so that answer matches none of the new requests.
TEST(ChatForwarding, AReplyToTheProcessBeforeARestartIsNotTakenForANewRequest) {
  std::uint64_t old_corr = 0;
  {
    Harness before;  // node a, first life
    before.fx.clear();
    before.client("old-client", Members{owned_by("c")}, 77);
    auto forwards = before.take_forwards();
    ASSERT_EQ(forwards.size(), 1u);
    old_corr = forwards[0].corr;
  }  // killed before c answered
  Harness after;  // node a, restarted
  after.fx.clear();
  after.client("new-client", Members{owned_by("c", 1)}, 5);
  auto forwards = after.take_forwards();
  ASSERT_EQ(forwards.size(), 1u);
  ASSERT_EQ(forwards[0].to, "@c");
  // c answers the old request; the reply comes to the restarted node.
  after.owner_replies("c", old_corr, {77, MembersOk{{"old"}}});
  EXPECT_TRUE(after.take_client_replies().empty()) << "a reply to the old process relayed to a new client";
  after.owner_replies("c", forwards[0].corr, {5, MembersOk{{"new"}}});
  auto replies = after.take_client_replies();
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0].reply.id, 5u);
  EXPECT_EQ(std::get<MembersOk>(replies[0].reply.body).members, (std::vector<std::string>{"new"}));
}

TEST(ChatForwarding, RequestsWithoutARoomOrForOwnRoomsAreHandledHere) {
  Harness h;
  h.fx.clear();
  const std::string ra = owned_by("a");
  h.client("client-1", Ping{}, 1);
  auto replies = h.take_client_replies();
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_TRUE(std::holds_alternative<PingOk>(replies[0].reply.body));

  h.client("client-1", CreateRoom{ra, "ann"}, 2);
  EXPECT_TRUE(h.take_forwards().empty());
  auto batch = h.take_batch();
  ASSERT_TRUE(batch) << "a room of this node is stored here";
  h.confirm(batch->batch);
  replies = h.take_client_replies();
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0].to, "client-1");
  EXPECT_TRUE(std::get<CreateRoomOk>(replies[0].reply.body).created);
  EXPECT_EQ(h.chat.stats().forwarded, 0u);
}

// ---- requests from other nodes --------------------------------------------------------

TEST(ChatForwarding, AForwardedRequestForAnOwnRoomIsHandledAndAnsweredAsAReplyFrameWithItsCorr) {
  Harness h;
  h.fx.clear();
  const std::string ra = owned_by("a");
  h.node_in("dealer-of-b", router::encode_peer(PeerKind::forward, 99, encode_request({42, CreateRoom{ra, "ann"}})));
  EXPECT_TRUE(h.take_forwards().empty());
  auto batch = h.take_batch();
  ASSERT_TRUE(batch);
  EXPECT_TRUE(h.take_node_replies().empty()) << "answered only once stored";
  h.confirm(batch->batch);
  auto replies = h.take_node_replies();
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0].to, "dealer-of-b");
  EXPECT_EQ(replies[0].kind, PeerKind::reply);
  EXPECT_EQ(replies[0].corr, 99u);
  auto reply = decode_reply(replies[0].body, Limits{});
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->id, 42u) << "the client's own request id";
  EXPECT_TRUE(std::get<CreateRoomOk>(reply->body).created);
  EXPECT_TRUE(h.take_client_replies().empty());

  // Answers that need no batch, and errors, are wrapped the same way.
  h.node_in("dealer-of-c", router::encode_peer(PeerKind::forward, 5, encode_request({43, Members{ra}})));
  h.node_in("dealer-of-c", router::encode_peer(PeerKind::forward, 6, encode_request({44, LastSeq{owned_by("a", 1)}})));
  replies = h.take_node_replies();
  ASSERT_EQ(replies.size(), 2u);
  EXPECT_EQ(replies[0].to, "dealer-of-c");
  EXPECT_EQ(replies[0].corr, 5u);
  auto members = decode_reply(replies[0].body, Limits{});
  ASSERT_TRUE(members);
  EXPECT_EQ(members->id, 43u);
  EXPECT_EQ(std::get<MembersOk>(members->body).members, (std::vector<std::string>{"ann"}));
  EXPECT_EQ(replies[1].corr, 6u);
  auto missing = decode_reply(replies[1].body, Limits{});
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->id, 44u);
  EXPECT_EQ(error_code(*missing), errc::no_such_room);
  EXPECT_TRUE(h.fx.empty());
}

TEST(ChatForwarding, AForwardedPublishIsStoredPublishedHereAndAcked) {
  Harness h(with_rooms({owned_by("a")}));
  h.fx.clear();
  const std::string ra = owned_by("a");
  h.node_in("dealer-of-b", router::encode_peer(PeerKind::forward, 7, encode_request({8, Publish{ra, "ann", "m1", "hi"}})));
  auto batch = h.take_batch();
  ASSERT_TRUE(batch);
  h.confirm(batch->batch);
  auto published = h.take<Effects::Publish>();
  ASSERT_EQ(published.size(), 1u) << "the owner publishes its room's messages";
  EXPECT_EQ(published[0].topic, room_topic(ra));
  auto replies = h.take_node_replies();
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0].corr, 7u);
  auto reply = decode_reply(replies[0].body, Limits{});
  ASSERT_TRUE(reply);
  EXPECT_EQ(std::get<PublishOk>(reply->body).seq, 1u);
}

TEST(ChatForwarding, AForwardedHistoryReadGoesToPersistenceAndThePageIsAnsweredAsAReplyFrame) {
  const std::string ra = owned_by("a");
  Harness h(with_rooms({ra}));
  h.fx.clear();
  h.node_in("dealer-of-b", router::encode_peer(PeerKind::forward, 21, encode_request({31, History{ra, 10, {}, {}}})));
  auto sends = h.take<Effects::Send>();
  ASSERT_EQ(sends.size(), 1u);
  EXPECT_EQ(sends[0].actor, "persistence");
  auto read = store::decode(sends[0].payload);
  ASSERT_TRUE(read);
  ASSERT_TRUE(std::holds_alternative<store::Read>(*read));
  const auto& r = std::get<store::Read>(*read);
  EXPECT_EQ(r.room, ra);
  EXPECT_EQ(r.reply_id, 31u);
  EXPECT_FALSE(h.chat.idle());

  const std::string page = encode_reply({31, HistoryOk{{RoomMessage{ra, 1, "ann", 5, "hi", "m1"}}, false}});
  h.deliver(Inbound::Via::peer, "persistence", {store::encode(store::Page{r.corr, page})});
  auto replies = h.take_node_replies();
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0].to, "dealer-of-b");
  EXPECT_EQ(replies[0].kind, PeerKind::reply);
  EXPECT_EQ(replies[0].corr, 21u);
  EXPECT_EQ(replies[0].body, page) << "persistence's page, unchanged";
  EXPECT_TRUE(h.take_client_replies().empty());
  EXPECT_TRUE(h.chat.idle());
}

TEST(ChatForwarding, ABadRequestInAForwardFrameGetsAnErrorReplyFrameWithItsCorr) {
  Harness h;
  h.fx.clear();
  h.node_in("dealer-of-b", router::encode_peer(PeerKind::forward, 13, "not msgpack at all"));
  auto replies = h.take_node_replies();
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0].to, "dealer-of-b");
  EXPECT_EQ(replies[0].kind, PeerKind::reply);
  EXPECT_EQ(replies[0].corr, 13u);
  auto reply = decode_reply(replies[0].body, Limits{});
  ASSERT_TRUE(reply);
  EXPECT_TRUE(std::holds_alternative<ErrorReply>(reply->body));
  EXPECT_TRUE(h.fx.empty());
}

TEST(ChatForwarding, UnreadableOrMisdirectedNodeFramesAreDroppedAndChatKeepsServing) {
  Harness h;
  h.fx.clear();
  h.node_in("dealer-of-b", "short");                                  // shorter than a header
  h.node_in("dealer-of-b", std::string("?") + std::string(8, '\0'));  // unknown kind
  h.node_in("dealer-of-b", router::encode_peer(PeerKind::reply, 1, "x"));  // replies go the other way
  h.node_in("dealer-of-b", router::encode_peer(PeerKind::pong, 1));
  h.deliver(Inbound::Via::node, "dealer-of-b", {router::encode_peer(PeerKind::ping, 1), "extra"});
  EXPECT_TRUE(h.fx.empty());
  h.node_in("dealer-of-b", router::encode_peer(PeerKind::ping, 2));
  auto replies = h.take_node_replies();
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0].kind, PeerKind::pong);
  EXPECT_EQ(replies[0].corr, 2u);
}

TEST(ChatForwarding, AForwardedRequestForARoomThisNodeDoesNotOwnIsUnavailableAndNeverForwardedAgain) {
  Harness h;
  h.fx.clear();
  for (std::string node : {"b", "c"}) {
    h.node_in("dealer-of-x", router::encode_peer(PeerKind::forward, 5, encode_request({11, Join{owned_by(node), "ann"}})));
    EXPECT_TRUE(h.take_forwards().empty()) << "forwarded twice (to " << node << ")";
    EXPECT_FALSE(h.take_batch());
    auto replies = h.take_node_replies();
    ASSERT_EQ(replies.size(), 1u);
    EXPECT_EQ(replies[0].to, "dealer-of-x");
    EXPECT_EQ(replies[0].kind, PeerKind::reply);
    EXPECT_EQ(replies[0].corr, 5u);
    auto reply = decode_reply(replies[0].body, Limits{});
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->id, 11u);
    EXPECT_EQ(error_code(*reply), errc::unavailable);
    EXPECT_TRUE(h.fx.empty());
  }
  EXPECT_EQ(h.chat.stats().forwarded, 0u);
}

TEST(ChatForwarding, AForwardedListRoomsIsAnsweredWithThisNodesRoomsOnly) {
  const std::string ra1 = owned_by("a"), ra2 = owned_by("a", 1);
  Harness h(with_rooms({ra1, ra2}));
  h.fx.clear();
  h.node_in("dealer-of-b", router::encode_peer(PeerKind::forward, 3, encode_request({12, ListRooms{}})));
  EXPECT_TRUE(h.take_forwards().empty()) << "a node's room list is not gathered again";
  auto replies = h.take_node_replies();
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0].corr, 3u);
  auto reply = decode_reply(replies[0].body, Limits{});
  ASSERT_TRUE(reply);
  auto rooms = std::get<RoomsOk>(reply->body).rooms;
  std::sort(rooms.begin(), rooms.end());
  auto expected = std::vector<std::string>{ra1, ra2};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(rooms, expected);
  EXPECT_TRUE(std::get<RoomsOk>(reply->body).missing.empty());
}

// ---- the breaker ----------------------------------------------------------------------

TEST(ChatForwarding, AnOwnerSilentForHeartbeatTimesMissesIsDownAndItsRequestsFailFast) {
  Harness h;
  h.fx.clear();
  const std::string rb = owned_by("b"), rc = owned_by("c"), ra = owned_by("a");
  h.client("client-1", Members{rb}, 1);
  h.client("client-2", Members{rc}, 2);
  h.client("client-3", LastSeq{owned_by("b", 1)}, 3);
  auto forwards = h.take_forwards();
  ASSERT_EQ(forwards.size(), 3u);

  // b never answers; c answers every ping.
  for (int i = 0; i < 3; ++i) {
    h.beat({"c"});
    EXPECT_TRUE(h.take_client_replies().empty()) << "failed after " << h.since_start().count() << " ms";
    EXPECT_TRUE(h.chat.peer_states().at("b"));
  }
  h.beat({"c"});  // 4000 ms of silence > 1000 ms x 3
  EXPECT_EQ(h.chat.peer_states(), (std::map<std::string, bool>{{"b", false}, {"c", true}}));
  auto replies = h.take_client_replies();
  ASSERT_EQ(replies.size(), 2u) << "both requests waiting on b are answered";
  EXPECT_EQ(replies[0].to, "client-1");
  EXPECT_EQ(replies[0].reply.id, 1u);
  EXPECT_EQ(error_code(replies[0].reply), errc::unavailable);
  EXPECT_EQ(replies[1].to, "client-3");
  EXPECT_EQ(replies[1].reply.id, 3u);
  EXPECT_EQ(error_code(replies[1].reply), errc::unavailable);

  // New requests for b's rooms fail at once, without a send.
  h.client("client-4", Join{rb, "ann"}, 4);
  EXPECT_TRUE(h.take_forwards().empty());
  replies = h.take_client_replies();
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0].to, "client-4");
  EXPECT_EQ(replies[0].reply.id, 4u);
  EXPECT_EQ(error_code(replies[0].reply), errc::unavailable);

  // c's request is still waiting, and c's rooms still work.
  h.owner_replies("c", forwards[1].corr, {2, MembersOk{{"cid"}}});
  replies = h.take_client_replies();
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0].to, "client-2");
  EXPECT_TRUE(std::holds_alternative<MembersOk>(replies[0].reply.body));
  h.client("client-5", Members{rc}, 5);
  auto to_c = h.take_forwards();
  ASSERT_EQ(to_c.size(), 1u);
  EXPECT_EQ(to_c[0].to, "@c");
  EXPECT_TRUE(h.take_client_replies().empty());

  // And so do this node's own.
  h.client("client-6", CreateRoom{ra, "ann"}, 6);
  EXPECT_TRUE(h.take_forwards().empty());
  EXPECT_TRUE(h.take_batch());
}

TEST(ChatForwarding, PingsGoOnToADownNodeAndItsPongClosesTheBreaker) {
  Harness h;
  h.fx.clear();
  for (int i = 0; i < 4; ++i) h.beat({"c"});
  ASSERT_FALSE(h.chat.peer_states().at("b"));

  // The half-open probe: the next heartbeat still pings b.
  h.now.steady = h.next_beat;
  h.chat.on_timer(h.heartbeat_timer, h.now, h.fx);
  auto pings = h.take_sent(PeerKind::ping);
  ASSERT_TRUE(std::any_of(pings.begin(), pings.end(), [](const Sent& s) { return s.to == "@b"; }));
  h.fx.clear();

  h.pong("b");
  EXPECT_TRUE(h.chat.peer_states().at("b"));
  h.client("client-1", Members{owned_by("b")}, 1);
  EXPECT_TRUE(h.take_client_replies().empty());
  auto forwards = h.take_forwards();
  ASSERT_EQ(forwards.size(), 1u) << "requests are forwarded again";
  EXPECT_EQ(forwards[0].to, "@b");
}

TEST(ChatForwarding, AnyReplyFromANodeKeepsItUp) {
  Harness h;
  h.fx.clear();
  const std::string rb = owned_by("b");
  // b answers no ping, but answers a request at 2500 ms.
  h.beat({"c"});
  h.beat({"c"});
  h.client("client-1", Members{rb}, 1);
  auto forwards = h.take_forwards();
  ASSERT_EQ(forwards.size(), 1u);
  h.now.steady += 500ms;
  h.owner_replies("b", forwards[0].corr, {1, MembersOk{{"ann"}}});
  ASSERT_EQ(h.take_client_replies().size(), 1u);
  h.beat({"c"});  // 3000
  h.beat({"c"});  // 4000: 1500 ms since b was heard from
  EXPECT_TRUE(h.chat.peer_states().at("b"));
  h.beat({"c"});
  h.beat({"c"});  // 6000: 3500 ms
  EXPECT_FALSE(h.chat.peer_states().at("b"));
}

TEST(ChatForwarding, AnUndeliverableForwardIsAnsweredAndOpensTheBreaker) {
  Harness h;
  h.fx.clear();
  const std::string rb = owned_by("b"), rc = owned_by("c");
  h.client("client-1", Members{rb}, 1);
  h.client("client-2", LastSeq{rb}, 2);
  auto forwards = h.take_forwards();
  ASSERT_EQ(forwards.size(), 2u);

  // The first could not go out: both it and the other one waiting on b fail.
  h.undeliverable("b", router::encode_peer(PeerKind::forward, forwards[0].corr, forwards[0].body));
  auto replies = h.take_client_replies();
  ASSERT_EQ(replies.size(), 2u);
  EXPECT_EQ(replies[0].to, "client-1");
  EXPECT_EQ(replies[0].reply.id, 1u);
  EXPECT_EQ(error_code(replies[0].reply), errc::unavailable);
  EXPECT_EQ(replies[1].to, "client-2");
  EXPECT_EQ(replies[1].reply.id, 2u);
  EXPECT_EQ(error_code(replies[1].reply), errc::unavailable);
  EXPECT_EQ(h.chat.peer_states(), (std::map<std::string, bool>{{"b", false}, {"c", true}}));
  EXPECT_TRUE(h.chat.idle());

  // At once, not after heartbeats: the next request for b's rooms fails fast.
  h.client("client-3", Members{rb}, 3);
  EXPECT_TRUE(h.take_forwards().empty());
  replies = h.take_client_replies();
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(error_code(replies[0].reply), errc::unavailable);
  h.client("client-4", Members{rc}, 4);
  EXPECT_EQ(h.take_forwards().size(), 1u);

  // The second's late undeliverable finds nobody to answer.
  h.undeliverable("b", router::encode_peer(PeerKind::forward, forwards[1].corr, forwards[1].body));
  EXPECT_TRUE(h.take_client_replies().empty());
}

TEST(ChatForwarding, AnUndeliverablePingDoesNotOpenTheBreaker) {
  Harness h;
  auto pings = h.take_sent(PeerKind::ping);
  h.fx.clear();
  for (const auto& p : pings)
    h.undeliverable(p.to.substr(1), router::encode_peer(PeerKind::ping, p.corr));
  EXPECT_EQ(h.chat.peer_states(), (std::map<std::string, bool>{{"b", true}, {"c", true}}));
  EXPECT_TRUE(h.fx.empty());
  h.client("client-1", Members{owned_by("b")}, 1);
  EXPECT_EQ(h.take_forwards().size(), 1u);
  EXPECT_TRUE(h.take_client_replies().empty());
}

TEST(ChatForwarding, AForwardedRequestWithNoReplyIsUnavailableAfterTheRequestTimeout) {
  Harness h({}, peer_options(2500ms));
  h.fx.clear();
  h.client("client-1", History{owned_by("b"), 10, {}, {}}, 1);
  auto forwards = h.take_forwards();
  ASSERT_EQ(forwards.size(), 1u);
  h.beat({"b", "c"});  // 1000
  h.beat({"b", "c"});  // 2000
  EXPECT_TRUE(h.take_client_replies().empty()) << "failed before its time";
  h.beat({"b", "c"});  // 3000: past 2500
  auto replies = h.take_client_replies();
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0].to, "client-1");
  EXPECT_EQ(replies[0].reply.id, 1u);
  EXPECT_EQ(error_code(replies[0].reply), errc::unavailable);
  EXPECT_TRUE(h.chat.peer_states().at("b")) << "a slow answer is no reason to call the node down";
  EXPECT_TRUE(h.chat.idle());

  // The late reply is not relayed: the client already has its answer.
  h.owner_replies("b", forwards[0].corr, {1, HistoryOk{{}, false}});
  EXPECT_TRUE(h.take_client_replies().empty());
  // And the next request goes to b as usual.
  h.client("client-1", Members{owned_by("b")}, 2);
  EXPECT_EQ(h.take_forwards().size(), 1u);
}

TEST(ChatForwarding, ANodeThatSaysByeIsDownAtOnceAndItsForwardsAreAnswered) {
  Harness h;
  h.fx.clear();
  h.client("client-1", History{owned_by("b"), 10, {}, {}}, 1);
  ASSERT_EQ(h.take_forwards().size(), 1u);
  h.node_in("b", router::encode_peer(PeerKind::bye, 0));
  auto replies = h.take_client_replies();
  ASSERT_EQ(replies.size(), 1u) << "answered now, not after the request timeout";
  EXPECT_EQ(error_code(replies[0].reply), errc::unavailable);
  EXPECT_FALSE(h.chat.peer_states().at("b"));
  h.client("client-1", Members{owned_by("b")}, 2);
  EXPECT_TRUE(h.take_forwards().empty()) << "b's breaker is open";
  EXPECT_EQ(error_code(h.take_client_replies().at(0).reply), errc::unavailable);
  h.beat({"b", "c"});  // b restarted: its answer closes the breaker
  EXPECT_TRUE(h.chat.peer_states().at("b"));
}

TEST(ChatForwarding, AFullQueueToAConnectedNodeFailsThatRequestOnlyAndKeepsTheBreakerClosed) {
  Harness h;
  h.fx.clear();
  const std::string frame = h.client("client-1", Members{owned_by("b")}, 1);
  auto forwards = h.take_forwards();
  ASSERT_EQ(forwards.size(), 1u);
  h.deliver(Inbound::Via::queue_full, peer_actor("b"), {router::encode_peer(PeerKind::forward, forwards[0].corr, frame)});
  auto replies = h.take_client_replies();
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(error_code(replies[0].reply), errc::unavailable);
  EXPECT_NE(std::get<ErrorReply>(replies[0].reply.body).message.find("not keeping up"), std::string::npos);
  EXPECT_TRUE(h.chat.peer_states().at("b")) << "b is connected: no reason to call it down";
  h.client("client-1", Members{owned_by("b")}, 2);
  EXPECT_EQ(h.take_forwards().size(), 1u) << "the next request goes to b";
}

TEST(ChatForwarding, AStoppingNodeSaysByeToEveryOther) {
  Harness h;
  h.fx.clear();
  h.chat.on_stop(h.now, h.fx);
  auto byes = h.take_sent(PeerKind::bye);
  ASSERT_EQ(byes.size(), 2u);
  EXPECT_EQ(byes[0].to, peer_actor("b"));
  EXPECT_EQ(byes[1].to, peer_actor("c"));
}

// ---- room lists -------------------------------------------------------------------------

TEST(ChatForwarding, ListRoomsGathersThisNodesRoomsAndEveryOtherNodes) {
  const std::string ra = owned_by("a"), rb = owned_by("b"), rc = owned_by("c");
  Harness h(with_rooms({ra}));
  h.fx.clear();
  const std::string request = h.client("client-1", ListRooms{}, 9);
  auto forwards = h.take_forwards();
  ASSERT_EQ(forwards.size(), 2u);
  std::map<std::string, std::uint64_t> corr;
  for (const auto& f : forwards) {
    EXPECT_EQ(f.body, request);
    corr[f.to] = f.corr;
  }
  ASSERT_EQ(corr.size(), 2u);
  ASSERT_TRUE(corr.count("@b") && corr.count("@c"));
  EXPECT_TRUE(h.take_client_replies().empty());

  h.owner_replies("c", corr["@c"], {9, RoomsOk{{rc}}});
  EXPECT_TRUE(h.take_client_replies().empty()) << "answered before every node did";
  h.owner_replies("b", corr["@b"], {9, RoomsOk{{rb}}});
  auto replies = h.take_client_replies();
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0].to, "client-1");
  EXPECT_EQ(replies[0].reply.id, 9u);
  const auto& ok = std::get<RoomsOk>(replies[0].reply.body);
  auto rooms = ok.rooms;
  std::sort(rooms.begin(), rooms.end());
  std::vector<std::string> expected{ra, rb, rc};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(rooms, expected);
  EXPECT_TRUE(ok.missing.empty());
  EXPECT_TRUE(h.chat.idle());
}

TEST(ChatForwarding, ListRoomsOfAUserFiltersHereAndAsksTheOthersTheSame) {
  const std::string ra1 = owned_by("a"), ra2 = owned_by("a", 1);
  persistence::Snapshot s = with_rooms({ra1});
  s.rooms[ra2] = persistence::RoomState{"bob", 1, 0, {{"bob", Role::owner}}};
  Harness h(s);
  h.fx.clear();
  const std::string request = h.client("client-1", ListRooms{"bob"}, 9);
  auto forwards = h.take_forwards();
  ASSERT_EQ(forwards.size(), 2u);
  for (const auto& f : forwards) EXPECT_EQ(f.body, request);
  for (const auto& f : forwards) h.owner_replies(f.to.substr(1), f.corr, {9, RoomsOk{}});
  auto replies = h.take_client_replies();
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(std::get<RoomsOk>(replies[0].reply.body).rooms, (std::vector<std::string>{ra2}));
}

TEST(ChatForwarding, ListRoomsNamesANodeThatIsDownAsMissing) {
  const std::string ra = owned_by("a"), rc = owned_by("c");
  Harness h(with_rooms({ra}));
  h.fx.clear();
  for (int i = 0; i < 4; ++i) h.beat({"c"});
  ASSERT_FALSE(h.chat.peer_states().at("b"));
  h.fx.clear();

  h.client("client-1", ListRooms{}, 9);
  auto forwards = h.take_forwards();
  ASSERT_EQ(forwards.size(), 1u) << "a node that is down is not asked";
  EXPECT_EQ(forwards[0].to, "@c");
  EXPECT_TRUE(h.take_client_replies().empty());
  h.owner_replies("c", forwards[0].corr, {9, RoomsOk{{rc}}});
  auto replies = h.take_client_replies();
  ASSERT_EQ(replies.size(), 1u);
  const auto& ok = std::get<RoomsOk>(replies[0].reply.body);
  auto rooms = ok.rooms;
  std::sort(rooms.begin(), rooms.end());
  std::vector<std::string> expected{ra, rc};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(rooms, expected);
  EXPECT_EQ(ok.missing, (std::vector<std::string>{"b"}));
}

TEST(ChatForwarding, ListRoomsWithEveryOtherNodeDownAnswersAtOnce) {
  const std::string ra = owned_by("a");
  Harness h(with_rooms({ra}));
  h.fx.clear();
  for (int i = 0; i < 4; ++i) h.beat();
  h.fx.clear();
  h.client("client-1", ListRooms{}, 9);
  EXPECT_TRUE(h.take_forwards().empty());
  auto replies = h.take_client_replies();
  ASSERT_EQ(replies.size(), 1u);
  const auto& ok = std::get<RoomsOk>(replies[0].reply.body);
  EXPECT_EQ(ok.rooms, (std::vector<std::string>{ra}));
  EXPECT_EQ(ok.missing, (std::vector<std::string>{"b", "c"}));
  EXPECT_TRUE(h.chat.idle());
}

TEST(ChatForwarding, ListRoomsNamesANodeThatFailsDuringTheGatherAsMissing) {
  const std::string ra = owned_by("a"), rb = owned_by("b");
  Harness h(with_rooms({ra}), peer_options(2500ms));
  h.fx.clear();

  // c's part cannot be sent; b's comes back with an error.
  h.client("client-1", ListRooms{}, 9);
  auto forwards = h.take_forwards();
  ASSERT_EQ(forwards.size(), 2u);
  for (const auto& f : forwards) {
    if (f.to == "@c") h.undeliverable("c", router::encode_peer(PeerKind::forward, f.corr, f.body));
  }
  EXPECT_TRUE(h.take_client_replies().empty());
  for (const auto& f : forwards) {
    if (f.to == "@b") h.owner_replies("b", f.corr, {9, ErrorReply{errc::unavailable, "shutting down"}});
  }
  auto replies = h.take_client_replies();
  ASSERT_EQ(replies.size(), 1u);
  const auto& ok = std::get<RoomsOk>(replies[0].reply.body);
  EXPECT_EQ(ok.rooms, (std::vector<std::string>{ra}));
  EXPECT_EQ(ok.missing, (std::vector<std::string>{"b", "c"}));

  // A part with no reply times out into `missing` too.
  h.pong("c");
  h.client("client-2", ListRooms{}, 10);
  forwards = h.take_forwards();
  ASSERT_EQ(forwards.size(), 2u);
  for (const auto& f : forwards) {
    if (f.to == "@b") h.owner_replies("b", f.corr, {10, RoomsOk{{rb}}});
  }
  EXPECT_TRUE(h.take_client_replies().empty());
  for (int i = 0; i < 3; ++i) h.beat({"b", "c"});
  replies = h.take_client_replies();
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0].to, "client-2");
  const auto& partial = std::get<RoomsOk>(replies[0].reply.body);
  auto rooms = partial.rooms;
  std::sort(rooms.begin(), rooms.end());
  std::vector<std::string> expected{ra, rb};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(rooms, expected);
  EXPECT_EQ(partial.missing, (std::vector<std::string>{"c"}));
}

// Another node's rooms_ok is read with the limits of a reply (as the client library
// reads replies), not of a request: a node with more than max_array (1024) rooms is
// listed, not reported missing.
TEST(ChatForwarding, ListRoomsTakesALongRoomListFromAnotherNode) {
  const std::string ra = owned_by("a");
  Harness h(with_rooms({ra}));
  h.fx.clear();
  h.client("client-1", ListRooms{}, 9);
  auto forwards = h.take_forwards();
  ASSERT_EQ(forwards.size(), 2u);
  std::vector<std::string> many;
  for (int i = 0; i < 2000; ++i) many.push_back("b-room-" + std::to_string(i));
  for (const auto& f : forwards)
    h.owner_replies(f.to.substr(1), f.corr, {9, RoomsOk{f.to == "@b" ? many : std::vector<std::string>{}}});
  auto replies = h.take_client_replies();
  ASSERT_EQ(replies.size(), 1u);
  const auto& ok = std::get<RoomsOk>(replies[0].reply.body);
  EXPECT_TRUE(ok.missing.empty()) << "b answered; missing: " << (ok.missing.empty() ? "" : ok.missing[0]);
  EXPECT_EQ(ok.rooms.size(), many.size() + 1);
}

// ---- relaying other nodes' rooms ------------------------------------------------------

TEST(ChatForwarding, ASubscriptionToAnotherNodesRoomSubscribesOnThatNodesFeed) {
  Harness h;
  h.fx.clear();
  for (std::string node : {"b", "c"}) {
    const std::string topic = room_topic(owned_by(node));
    h.subscription(std::string("\x01", 1) + topic);
    auto subs = h.take<Effects::Subscribe>();
    ASSERT_EQ(subs.size(), 1u);
    EXPECT_EQ(subs[0].feed, node);
    EXPECT_EQ(subs[0].topic, topic);
    EXPECT_TRUE(subs[0].on);

    h.subscription(std::string("\x00", 1) + topic);
    subs = h.take<Effects::Subscribe>();
    ASSERT_EQ(subs.size(), 1u);
    EXPECT_EQ(subs[0].feed, node);
    EXPECT_EQ(subs[0].topic, topic);
    EXPECT_FALSE(subs[0].on);
  }
  EXPECT_TRUE(h.fx.empty());
}

TEST(ChatForwarding, ASubscriptionToAnOwnRoomNeedsNoFeed) {
  Harness h;
  h.fx.clear();
  h.subscription(std::string("\x01", 1) + room_topic(owned_by("a")));
  h.subscription(std::string("\x00", 1) + room_topic(owned_by("a")));
  h.subscription("");
  EXPECT_TRUE(h.fx.empty());
}

TEST(ChatForwarding, APrefixSubscriptionSubscribesOnEveryOtherNodesFeed) {
  Harness h;
  h.fx.clear();
  for (const std::string& prefix : {std::string(), std::string("room-"), owned_by("b").substr(0, 6)}) {
    for (bool on : {true, false}) {
      h.subscription(std::string(1, on ? '\x01' : '\x00') + prefix);
      auto subs = h.take<Effects::Subscribe>();
      ASSERT_EQ(subs.size(), 2u) << "prefix '" << prefix << "'";
      std::vector<std::string> feeds;
      for (const auto& s : subs) {
        feeds.push_back(s.feed);
        EXPECT_EQ(s.topic, prefix);
        EXPECT_EQ(s.on, on);
      }
      std::sort(feeds.begin(), feeds.end());
      EXPECT_EQ(feeds, (std::vector<std::string>{"b", "c"}));
    }
  }
  EXPECT_TRUE(h.fx.empty());
}

TEST(ChatForwarding, AFeedMessageIsPublishedHereOnlyIfItComesFromTheRoomsOwner) {
  Harness h;
  h.fx.clear();
  const std::string rb = owned_by("b"), rc = owned_by("c"), ra = owned_by("a");
  const std::string message = encode_message(RoomMessage{rb, 4, "ann", 1'700'000'000'000, "hi", "m4"});

  h.feed("b", room_topic(rb), message);
  auto published = h.take<Effects::Publish>();
  ASSERT_EQ(published.size(), 1u);
  EXPECT_EQ(published[0].topic, room_topic(rb));
  EXPECT_EQ(published[0].payload, message) << "relayed unchanged";
  EXPECT_EQ(h.chat.stats().relayed, 1u);

  // The same message relayed by c (it has subscribers of b's rooms too): a duplicate.
  h.feed("c", room_topic(rb), message);
  // This node's own room, coming back from another node: a duplicate too.
  h.feed("b", room_topic(ra), encode_message(RoomMessage{ra, 1, "ann", 1, "x", "x"}));
  // Not a room topic.
  h.feed("b", rb, message);
  EXPECT_TRUE(h.fx.empty());
  EXPECT_EQ(h.chat.stats().relayed, 1u);

  h.feed("c", room_topic(rc), "payload");
  published = h.take<Effects::Publish>();
  ASSERT_EQ(published.size(), 1u);
  EXPECT_EQ(published[0].topic, room_topic(rc));
  EXPECT_EQ(published[0].payload, "payload");
  EXPECT_TRUE(h.fx.empty());
}

TEST(ChatForwarding, HeadsEventsAreSentOnTheTimerAndRelayedOnlyFromTheNodeThatMadeThem) {
  Harness h;
  h.fx.clear();
  h.chat.on_timer(h.heads_timer, h.now, h.fx);  // a quiet node: its keepalive
  auto published = h.take<Effects::Publish>();
  ASSERT_EQ(published.size(), 1u);
  EXPECT_EQ(published[0].topic, heads_topic());
  auto own = decode_heads(published[0].payload, Limits{});
  ASSERT_TRUE(own) << own.error().message;
  EXPECT_EQ(own->node, "a");
  EXPECT_EQ(own->number, 1u);
  EXPECT_TRUE(own->rooms.empty());
  auto timers = h.take<Effects::Timer>();
  ASSERT_EQ(timers.size(), 1u) << "the next heads";
  EXPECT_EQ(timers[0].at, h.now.steady + std::chrono::milliseconds(250));

  const std::string b_heads = encode_heads(HeadsEvent{"b", 3, {{owned_by("b"), 9}}});
  h.feed("b", heads_topic(), b_heads);
  published = h.take<Effects::Publish>();
  ASSERT_EQ(published.size(), 1u) << "b's own heads reach this node's subscribers";
  EXPECT_EQ(published[0].payload, b_heads) << "relayed unchanged";
  h.feed("c", heads_topic(), b_heads);  // c relaying b's: b's own feed brings them
  h.feed("b", heads_topic(), "not msgpack");
  EXPECT_TRUE(h.fx.empty());
}

// ---- replicated shards (docs/REPLICATION.md) -----------------------------------------

namespace {

/// s1 (a's) has b as its replica, acked once b has a write; s2 (b's) has a as its
/// replica, acked by b alone.
std::vector<router::ShardConfig> replicated_shards() {
  auto s = shards();
  s[0].replicas = {"b"};
  s[0].ack = router::ShardConfig::Ack::replicated;
  s[0].ack_replicas = 1;
  s[1].replicas = {"a"};
  return s;
}

std::string log_entry_frame(std::uint64_t lsn, const std::vector<persistence::Record>& records) {
  return router::encode_peer(PeerKind::log_entry, lsn, router::encode_shipped("s2", 1, 1, lsn > 1 ? 1 : 0, store::encode_records(records)));
}

}  // namespace

TEST(ChatReplication, AWriteIsAcknowledgedOnlyOnceAReplicaHasItsLogEntryDurably) {
  Harness h({}, peer_options(), replicated_shards());
  h.fx.clear();
  const std::string room = owned_by("a");
  h.client("c1", CreateRoom{room, "ann"});
  auto create = h.take_batch();
  ASSERT_TRUE(create);
  const auto* entry = std::get_if<persistence::LogEntry>(&create->records.back());
  ASSERT_NE(entry, nullptr) << "the batch carries s1's log entry";
  EXPECT_EQ(entry->shard, "s1");
  EXPECT_EQ(entry->lsn, 1u);
  EXPECT_TRUE(h.take_sent(PeerKind::log_entry).empty()) << "nothing goes to a replica before it is durable here";

  h.confirm(create->batch);
  auto shipped = h.take_sent(PeerKind::log_entry);
  ASSERT_EQ(shipped.size(), 1u);
  EXPECT_EQ(shipped[0].to, "@b");
  EXPECT_EQ(shipped[0].corr, 1u);
  EXPECT_TRUE(h.take_client_replies().empty()) << "durable here is not enough with ack = replicated";
  h.node_in("b", router::encode_peer(PeerKind::kept, 1, router::encode_kept("s1", 1, 1)));
  auto replies = h.take_client_replies();
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_TRUE(std::holds_alternative<CreateRoomOk>(replies[0].reply.body));

  h.client("c1", Publish{room, "ann", "m1", "hello"});
  auto publish = h.take_batch();
  ASSERT_TRUE(publish);
  h.confirm(publish->batch);
  EXPECT_EQ(h.take_sent(PeerKind::log_entry).size(), 1u);
  EXPECT_TRUE(h.take<Effects::Publish>().empty()) << "not published to subscribers before it is acknowledged";
  h.node_in("c", router::encode_peer(PeerKind::kept, 2, router::encode_kept("s1", 1, 1)));
  EXPECT_TRUE(h.take_client_replies().empty()) << "c is no replica of s1: its word counts for nothing";
  h.from_peer("b", router::encode_peer(PeerKind::kept, 2, router::encode_kept("s1", 1, 1)));  // b's answer on a's link to it
  replies = h.take_client_replies();
  ASSERT_EQ(replies.size(), 1u);
  ASSERT_TRUE(std::holds_alternative<PublishOk>(replies[0].reply.body));
  EXPECT_EQ(std::get<PublishOk>(replies[0].reply.body).seq, 1u);
  EXPECT_EQ(h.take<Effects::Publish>().size(), 1u);

  // A gap reported by b: the entries after what it has are read from the log.
  h.node_in("b", router::encode_peer(PeerKind::gap, 1, "s1"));
  bool read = false;
  for (const auto& e : h.fx.list())
    if (auto* s = std::get_if<Effects::Send>(&e); s && s->actor == "persistence") {
      auto m = store::decode(s->payload);
      if (m && std::holds_alternative<store::ReadLog>(*m)) {
        EXPECT_EQ(std::get<store::ReadLog>(*m).shard, "s1");
        EXPECT_EQ(std::get<store::ReadLog>(*m).after, 1u);
        read = true;
      }
    }
  EXPECT_TRUE(read) << "no log read for b's gap";
}

TEST(ChatReplication, AReplicaAppliesItsPrimarysEntriesInOrderAndRefusesAnyOther) {
  Harness h({}, peer_options(), replicated_shards());
  h.fx.clear();
  const std::string room = owned_by("b");  // s2: primary b, replica a (this node)
  const std::vector<persistence::Record> create = {persistence::CreateRoom{room, "bob", 5}};

  h.node_in("c", log_entry_frame(1, create));
  EXPECT_FALSE(h.take_batch()) << "c is not s2's primary";
  h.node_in("b", log_entry_frame(1, {persistence::CreateRoom{owned_by("c"), "bob", 5}}));
  EXPECT_FALSE(h.take_batch()) << "a room of another shard in s2's log";
  h.node_in("b", router::encode_peer(PeerKind::log_entry, 1, router::encode_shipped("s2", 1, 1, 0, "\xc1")));
  EXPECT_FALSE(h.take_batch()) << "unreadable records";
  h.node_in("b", router::encode_peer(PeerKind::log_entry, 1, "no shard name"));
  EXPECT_FALSE(h.take_batch()) << "an unreadable entry";

  h.node_in("b", log_entry_frame(1, create));
  auto applied = h.take_batch();
  ASSERT_TRUE(applied);
  ASSERT_EQ(applied->records.size(), 2u);
  EXPECT_TRUE(std::holds_alternative<persistence::CreateRoom>(applied->records[0]));
  ASSERT_TRUE(std::holds_alternative<persistence::LogEntry>(applied->records[1]));
  EXPECT_EQ(std::get<persistence::LogEntry>(applied->records[1]).lsn, 1u);
  EXPECT_TRUE(h.take_sent(PeerKind::kept).empty()) << "kept only once durable";
  h.confirm(applied->batch);
  auto kept = h.take_sent(PeerKind::kept);
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_EQ(kept[0].to, "@b");
  EXPECT_EQ(kept[0].corr, 1u);
  EXPECT_EQ(kept[0].body, router::encode_kept("s2", 1, 1)) << "its last entry's term, and the term it is in";

  h.node_in("b", log_entry_frame(1, create));
  EXPECT_FALSE(h.take_batch()) << "an entry it has is not applied twice";
  h.node_in("b", log_entry_frame(3, {persistence::StoredMessage{room, 2, "bob", 6, "x", "m2"}}));
  EXPECT_FALSE(h.take_batch()) << "nothing past a gap is applied";
  auto gap = h.take_sent(PeerKind::gap);
  ASSERT_EQ(gap.size(), 1u);
  EXPECT_EQ(gap[0].to, "@b");
  EXPECT_EQ(gap[0].corr, 1u) << "it asks for what follows the last entry it has";
}

TEST(ChatReplication, ABanIsAcknowledgedOnceAReplicaHasItAndAReplicaStoresItFromItsPrimarysEntry) {
  Harness h({}, peer_options(), replicated_shards());
  h.fx.clear();
  const std::string room = owned_by("a");
  h.client("c1", CreateRoom{room, "ann"});
  auto create = h.take_batch();
  ASSERT_TRUE(create);
  h.confirm(create->batch);
  ASSERT_EQ(h.take_sent(PeerKind::log_entry).size(), 1u);
  h.from_peer("b", router::encode_peer(PeerKind::kept, 1, router::encode_kept("s1", 1, 1)));
  ASSERT_EQ(h.take_client_replies().size(), 1u);

  h.client("c1", Ban{room, "bob"});
  auto ban = h.take_batch();
  ASSERT_TRUE(ban);
  ASSERT_EQ(ban->records.size(), 2u);
  const auto& record = std::get<persistence::RemoveMember>(ban->records[0]);
  EXPECT_TRUE(record.remember && record.ban);
  // The entry b gets carries the ban as it is.
  const auto& entry = std::get<persistence::LogEntry>(ban->records[1]);
  auto shipped = store::decode_records(entry.body, Limits{});
  ASSERT_TRUE(shipped) << shipped.error().message;
  ASSERT_EQ(shipped->size(), 1u);
  const auto& carried = std::get<persistence::RemoveMember>(shipped->front());
  EXPECT_EQ(std::tie(carried.room, carried.user, carried.remember, carried.ban),
            std::tie(record.room, record.user, record.remember, record.ban));
  h.confirm(ban->batch);
  EXPECT_EQ(h.take_sent(PeerKind::log_entry).size(), 1u);
  EXPECT_TRUE(h.take_client_replies().empty()) << "durable here is not enough with ack = replicated";
  h.from_peer("b", router::encode_peer(PeerKind::kept, 2, router::encode_kept("s1", 1, 1)));
  auto replies = h.take_client_replies();
  ASSERT_EQ(replies.size(), 1u);
  ASSERT_TRUE(std::holds_alternative<BanOk>(replies[0].reply.body));
  EXPECT_TRUE(std::get<BanOk>(replies[0].reply.body).banned);

  // A removal without a ban is encoded as before bans (nodes of earlier versions read it).
  const std::vector<persistence::Record> removal = {persistence::RemoveMember{room, "cy", true}};
  const std::string plain = store::encode_records(removal);
  EXPECT_EQ(static_cast<unsigned char>(plain.at(1)), 0x94u) << "[kind, room, user, remember]";
  auto back = store::decode_records(plain, Limits{});
  ASSERT_TRUE(back);
  EXPECT_FALSE(std::get<persistence::RemoveMember>(back->front()).ban);

  // As s2's replica, this node stores a ban its primary's entry carries.
  const std::string theirs = owned_by("b");
  h.node_in("b", log_entry_frame(1, {persistence::CreateRoom{theirs, "bob", 5},
                                     persistence::RemoveMember{theirs, "eve", true, true}}));
  auto applied = h.take_batch();
  ASSERT_TRUE(applied);
  ASSERT_EQ(applied->records.size(), 3u);
  EXPECT_TRUE(std::get<persistence::RemoveMember>(applied->records[1]).ban);
}

TEST(ChatReplication, AfterARestartARetryOfAStoredPublishWaitsForTheReplicasToConfirmIt) {
  // The primary stored "m1" (log entry 5), then died before b confirmed it.
  const std::string room = owned_by("a");
  persistence::Snapshot snapshot = with_rooms({room});
  snapshot.rooms[room].last_seq = 1;
  snapshot.recent.push_back({room, "ann", "m1", 1, 1'700'000'000'000});
  snapshot.logs["s1"] = {1, 5};
  Harness h(snapshot, peer_options(), replicated_shards());
  h.fx.clear();

  h.client("c1", Publish{room, "ann", "m1", "hello"});
  auto replies = h.take_client_replies();
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(error_code(replies[0].reply), errc::unavailable) << "b may not have it: not acknowledged yet";
  EXPECT_FALSE(h.take_batch()) << "and not stored again";

  h.node_in("b", router::encode_peer(PeerKind::kept, 5, router::encode_kept("s1", 1, 1)));  // b's heartbeat report: it has entry 5
  h.client("c1", Publish{room, "ann", "m1", "hello"});
  replies = h.take_client_replies();
  ASSERT_EQ(replies.size(), 1u);
  ASSERT_TRUE(std::holds_alternative<PublishOk>(replies[0].reply.body));
  EXPECT_EQ(std::get<PublishOk>(replies[0].reply.body).seq, 1u);
  EXPECT_TRUE(std::get<PublishOk>(replies[0].reply.body).duplicate);
}

// ---- failover (docs/REPLICATION.md) ------------------------------------------------

namespace {

/// s1 (a's) and s2 (b's) each have the two other nodes as replicas: both fail over.
std::vector<router::ShardConfig> failover_shards() {
  auto s = shards();
  s[0].replicas = {"b", "c"};
  s[1].replicas = {"a", "c"};
  for (int i : {0, 1}) {
    s[i].ack = router::ShardConfig::Ack::replicated;
    s[i].ack_replicas = 1;
  }
  return s;
}

std::string vote_request(bool pre, std::uint64_t term, std::uint64_t last_term, std::uint64_t last_lsn) {
  return router::encode_peer(PeerKind::vote_request, term,
                             router::encode_vote_request({"s2", pre, last_term, last_lsn}));
}

std::string vote(bool pre, std::uint64_t term, bool granted = true) {
  return router::encode_peer(PeerKind::vote, term, router::encode_vote({"s2", pre, granted, term}));
}

/// The vote chat gave to `node` (a node reply 'Y'), decoded; nullopt if none.
std::optional<router::Vote> vote_given(Harness& h, const std::string& node, std::string& body) {
  for (auto& r : h.take_node_replies())
    if (r.to == node && r.kind == PeerKind::vote) {
      body = r.body;
      return router::decode_vote(body);
    }
  return std::nullopt;
}

/// Heartbeats (each answered by `answering`) until chat stands: the vote requests it sent.
std::vector<Sent> beat_until_it_stands(Harness& h, const std::vector<std::string>& answering, int beats = 10) {
  std::vector<Sent> asked;
  for (int i = 0; i < beats && asked.empty(); ++i) {
    h.beat(answering);
    asked = h.take_sent(PeerKind::vote_request);
  }
  return asked;
}

}  // namespace

TEST(Failover, AReplicaStandsOnlyOnceItsPrimaryIsGoneAndTakesOverWithAMajority) {
  NodeMetrics metrics("a");
  Harness h({}, peer_options(), failover_shards(), &metrics.chat());
  for (int i = 0; i < 5; ++i) h.beat({"b", "c"});
  EXPECT_TRUE(h.take_sent(PeerKind::vote_request).empty()) << "b answers: no election";

  // b stops answering: after 3 missed heartbeats it is down, and 1-3 heartbeats later
  // a asks b and c whether they would vote for it in term 2 (a pre-vote).
  std::vector<Sent> asked;
  int beats = 0;
  for (; beats < 10 && asked.empty(); ++beats) {
    h.beat({"c"});
    asked = h.take_sent(PeerKind::vote_request);
  }
  ASSERT_EQ(asked.size(), 2u);
  EXPECT_GE(beats, 4) << "not before b is down and a random wait has passed";
  for (const auto& v : asked) {
    EXPECT_EQ(v.corr, 2u);
    auto request = router::decode_vote_request(v.body);
    ASSERT_TRUE(request);
    EXPECT_TRUE(request->pre);
  }
  EXPECT_FALSE(h.take_batch()) << "a pre-vote changes nothing: the term is not raised";

  // c would: a raises its term to 2, votes for itself, and stores that before asking.
  h.from_peer("c", vote(true, 2));
  auto own = h.take_batch();
  ASSERT_TRUE(own);
  ASSERT_EQ(own->records.size(), 1u);
  EXPECT_EQ(std::get<persistence::ShardVote>(own->records[0]), (persistence::ShardVote{"s2", 2, "a", "b"}));
  EXPECT_TRUE(h.take_sent(PeerKind::vote_request).empty()) << "its own vote is stored first";
  h.confirm(own->batch);
  asked = h.take_sent(PeerKind::vote_request);
  ASSERT_EQ(asked.size(), 2u);
  EXPECT_FALSE(router::decode_vote_request(asked[0].body)->pre);

  // c's vote makes two of three: a is s2's primary in term 2.
  h.take_sent(PeerKind::primary);  // a announces itself as s1's primary every heartbeat
  h.from_peer("c", vote(false, 2));
  auto first = h.take_batch();
  ASSERT_TRUE(first);
  ASSERT_EQ(first->records.size(), 2u);
  EXPECT_EQ(std::get<persistence::ShardVote>(first->records[0]), (persistence::ShardVote{"s2", 2, "a", "a"}));
  const auto& entry = std::get<persistence::LogEntry>(first->records[1]);
  EXPECT_EQ(entry.term, 2u);
  EXPECT_EQ(entry.lsn, 1u) << "the term begins with an entry of its own";
  auto announced = h.take_sent(PeerKind::primary);
  ASSERT_EQ(announced.size(), 2u) << "to every other node";
  EXPECT_EQ(announced[0].corr, 2u);
  EXPECT_EQ(router::decode_primary(announced[0].body)->node, "a");

  // Writes to s2's rooms are a's now, not forwarded to b.
  h.confirm(first->batch);
  h.client("c1", CreateRoom{owned_by("b"), "ann"});
  EXPECT_TRUE(h.take_forwards().empty());
  auto create = h.take_batch();
  ASSERT_TRUE(create);
  EXPECT_TRUE(std::holds_alternative<persistence::CreateRoom>(create->records[0]));
  EXPECT_EQ(metrics.chat().elections.Value(), 1.0) << "counted for operators (docs/METRICS.md)";
  EXPECT_EQ(metrics.chat().promotions.Value(), 1.0);
  EXPECT_EQ(metrics.chat().step_downs.Value(), 0.0);
}

TEST(Failover, AVoteGoesOnlyToACandidateAsFarAlongIsStoredBeforeItIsGivenAndIsGivenOncePerTerm) {
  persistence::Snapshot snapshot;
  snapshot.logs["s2"] = {1, 5};
  Harness h(snapshot, peer_options(), failover_shards());
  h.beat({"b", "c"});
  std::string body;
  h.node_in("c", vote_request(true, 2, 1, 5));
  auto given = vote_given(h, "c", body);
  ASSERT_TRUE(given);
  EXPECT_FALSE(given->granted) << "a still hears from b: it does not help depose it";

  for (int i = 0; i < 4; ++i) h.beat({"c"});  // b is down for a now
  h.node_in("c", vote_request(true, 2, 1, 4));
  given = vote_given(h, "c", body);
  ASSERT_TRUE(given);
  EXPECT_FALSE(given->granted) << "c's log is behind a's: it may lack an acknowledged write";
  // (A log as far along as a's gets a's pre-vote too, unless a stands itself at the same
  // time: OfTwoMembersStandingAtOnce... below.)
  h.node_in("c", vote_request(true, 2, 1, 6));
  given = vote_given(h, "c", body);
  ASSERT_TRUE(given);
  EXPECT_TRUE(given->granted && given->pre);
  EXPECT_FALSE(h.take_batch()) << "a pre-vote stores nothing";

  h.node_in("c", vote_request(false, 2, 1, 5));
  EXPECT_FALSE(vote_given(h, "c", body)) << "not given before it is stored";
  auto stored = h.take_batch();
  ASSERT_TRUE(stored);
  EXPECT_EQ(std::get<persistence::ShardVote>(stored->records[0]), (persistence::ShardVote{"s2", 2, "c", "b"}));
  h.confirm(stored->batch);
  given = vote_given(h, "c", body);
  ASSERT_TRUE(given);
  EXPECT_TRUE(given->granted && !given->pre);

  h.node_in("b", vote_request(false, 2, 1, 5));
  given = vote_given(h, "b", body);
  ASSERT_TRUE(given);
  EXPECT_FALSE(given->granted) << "one vote per term, and a's went to c";

  // c announces itself: a's entries come from c, and s2's rooms are forwarded to c.
  h.node_in("c", router::encode_peer(PeerKind::primary, 2, router::encode_primary("s2", "c", 0, 0)));
  auto standing = h.take_batch();
  ASSERT_TRUE(standing);
  EXPECT_EQ(std::get<persistence::ShardVote>(standing->records[0]), (persistence::ShardVote{"s2", 2, "c", "c"}))
      << "a stores whom it follows";
  h.take_sent(PeerKind::kept);  // its heartbeat reports to b, from before
  h.client("c1", Publish{owned_by("b"), "ann", "m1", "hello"});
  auto forwards = h.take_forwards();
  ASSERT_EQ(forwards.size(), 1u);
  EXPECT_EQ(forwards[0].to, "@c");
  h.node_in("b", router::encode_peer(PeerKind::log_entry, 6, router::encode_shipped("s2", 1, 1, 0, store::encode_records({}))));
  EXPECT_FALSE(h.take_batch()) << "an entry of term 1, from the old primary: refused";
  auto told = h.take_sent(PeerKind::kept);
  ASSERT_EQ(told.size(), 1u);
  EXPECT_EQ(told[0].to, "@b");
  EXPECT_EQ(router::decode_kept(told[0].body)->term, 2u) << "b is told of term 2, so it stops";
}

TEST(Failover, APrimaryThatHearsOfALaterTermStopsAndAnswersWhatWaitedForReplicasUnavailable) {
  NodeMetrics metrics("a");
  Harness h({}, peer_options(), failover_shards(), &metrics.chat());
  h.fx.clear();
  const std::string room = owned_by("a");
  h.client("c1", CreateRoom{room, "ann"});
  auto create = h.take_batch();
  ASSERT_TRUE(create);
  h.confirm(create->batch);
  h.node_in("b", router::encode_peer(PeerKind::kept, 1, router::encode_kept("s1", 1, 1)));
  ASSERT_EQ(h.take_client_replies().size(), 1u);

  h.client("c1", Publish{room, "ann", "m1", "hello"});
  auto publish = h.take_batch();
  ASSERT_TRUE(publish);
  h.confirm(publish->batch);
  EXPECT_TRUE(h.take_client_replies().empty()) << "waiting for a replica";
  // c is in term 2: another node was elected while a was away (frozen, cut off).
  h.node_in("c", router::encode_peer(PeerKind::kept, 1, router::encode_kept("s1", 1, 2)));
  auto replies = h.take_client_replies();
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(error_code(replies[0].reply), errc::unavailable) << "never acknowledged in the old term";
  EXPECT_EQ(metrics.chat().step_downs.Value(), 1.0);
  EXPECT_TRUE(h.take<Effects::Publish>().empty()) << "nor published";
  h.client("c1", Publish{room, "ann", "m2", "hello"});
  replies = h.take_client_replies();
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(error_code(replies[0].reply), errc::unavailable) << "no primary known yet";
  h.node_in("c", router::encode_peer(PeerKind::primary, 2, router::encode_primary("s1", "c", 0, 0)));
  h.client("c1", Publish{room, "ann", "m2", "hello"});
  auto forwards = h.take_forwards();
  ASSERT_EQ(forwards.size(), 1u);
  EXPECT_EQ(forwards[0].to, "@c");
}

TEST(Failover, AnEntryOfALaterTermMakesAPrimaryFollowItsSenderAndThatIsStoredWithTheEntry) {
  Harness h({}, peer_options(), failover_shards());
  h.fx.clear();
  // b was elected for s1 (a's) in term 2 while a was away; its first entry reaches a.
  h.node_in("b", router::encode_peer(PeerKind::log_entry, 1,
                                     router::encode_shipped("s1", 2, 2, 0, store::encode_records({}))));
  auto stored = h.take_batch();
  ASSERT_TRUE(stored);
  ASSERT_EQ(stored->records.size(), 2u);
  EXPECT_EQ(std::get<persistence::LogEntry>(stored->records[0]).term, 2u);
  EXPECT_EQ(std::get<persistence::ShardVote>(stored->records[1]), (persistence::ShardVote{"s1", 2, "", "b"}))
      << "that a follows b in term 2 is stored, in the same transaction as the entry";
  h.client("c1", Publish{owned_by("a"), "ann", "m1", "hello"});
  auto forwards = h.take_forwards();
  ASSERT_EQ(forwards.size(), 1u) << "a forwards s1's writes to b now";
  EXPECT_EQ(forwards[0].to, "@b");
  // An entry that does not follow a's log (its previous entry of another term) is not taken.
  h.confirm(stored->batch);
  h.take_sent(PeerKind::kept);
  h.node_in("b", router::encode_peer(PeerKind::log_entry, 2,
                                     router::encode_shipped("s1", 2, 2, 1, store::encode_records({}))));
  EXPECT_FALSE(h.take_batch()) << "a's entry 1 is of term 2, not 1";
  auto kept = h.take_sent(PeerKind::kept);
  ASSERT_EQ(kept.size(), 1u) << "a says where its log ends instead";
  EXPECT_EQ(kept[0].corr, 1u);
  EXPECT_EQ(router::decode_kept(kept[0].body)->last_term, 2u);
}

std::string blank_report(const std::string& shard) {
  return router::encode_peer(PeerKind::kept, 0, router::encode_kept(shard, 0, 0));
}

TEST(Failover, ANewShardStartsOnlyOnceAMajorityOfItsMembersSayTheyHaveNothingOfIt) {
  Harness h({}, peer_options(), failover_shards(), nullptr, /*blank=*/true);
  ASSERT_TRUE(h.blank_timer) << "a blank seat says so more often than every heartbeat";
  std::set<std::string> told;
  for (const auto& k : h.take_sent(PeerKind::kept)) {
    auto kept = router::decode_kept(k.body);
    ASSERT_TRUE(kept);
    EXPECT_EQ(kept->term, 0u) << "term 0: nothing of the shard here";
    EXPECT_EQ(k.corr, 0u);
    if (kept->shard == "s1") told.insert(k.to);
  }
  EXPECT_EQ(told, (std::set<std::string>{"@b", "@c"})) << "to every other member";

  // No primary yet: a write is unavailable at once, and nothing is stored.
  const std::string room = owned_by("a");
  h.client("c1", CreateRoom{room, "ann"});
  auto replies = h.take_client_replies();
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(error_code(replies[0].reply), errc::unavailable);
  EXPECT_FALSE(h.take_batch());
  EXPECT_TRUE(h.take_sent(PeerKind::primary).empty()) << "a blank owner does not call itself the primary";

  // b has nothing of s1 either: two of three members, so the shard is new and a starts it.
  h.node_in("b", blank_report("s1"));
  auto vote = h.take_batch();
  ASSERT_TRUE(vote);
  ASSERT_EQ(vote->records.size(), 1u);
  EXPECT_EQ(std::get<persistence::ShardVote>(vote->records[0]), (persistence::ShardVote{"s1", 1, "a", "a"}));
  auto announced = h.take_sent(PeerKind::primary);
  ASSERT_EQ(announced.size(), 2u) << "to every other node, at once";
  EXPECT_EQ(announced[0].corr, 1u);
  EXPECT_EQ(router::decode_primary(announced[0].body)->node, "a");
  h.confirm(vote->batch);
  h.client("c1", CreateRoom{room, "ann"});
  auto create = h.take_batch();
  ASSERT_TRUE(create);
  EXPECT_TRUE(std::holds_alternative<persistence::CreateRoom>(create->records[0]));
  const auto& entry = std::get<persistence::LogEntry>(create->records.back());
  EXPECT_EQ(entry.term, 1u);
  EXPECT_EQ(entry.lsn, 1u);
}

TEST(Failover, APrimaryThatComesBackWithNothingIsReplacedAndAMemberThatDidLearnsBeforeItVotes) {
  {
    // a follows b in s2; b comes back blank (a new data directory): it still answers
    // pings, but a counts it as gone, and stands.
    Harness h({}, peer_options(), failover_shards());
    h.beat({"b", "c"});
    h.node_in("b", blank_report("s2"));
    ASSERT_EQ(beat_until_it_stands(h, {"b", "c"}, 5).size(), 2u) << "b answers pings, but has nothing of s2: an election";
    std::string body;
    h.node_in("c", vote_request(true, 2, 1, 0));
    auto given = vote_given(h, "c", body);
    ASSERT_TRUE(given);
    EXPECT_TRUE(given->granted) << "a would vote for c too: its primary is as good as gone";
  }
  // a comes back blank. b, a primary of term 2 that has not heard of term 3 yet, announces
  // itself first: a does not follow before it has heard from enough members (with three,
  // both others) to know the latest term.
  Harness h({}, peer_options(), failover_shards(), nullptr, /*blank=*/true);
  auto announce = [](const std::string& node, std::uint64_t term, std::uint64_t committed) {
    return router::encode_peer(PeerKind::primary, term, router::encode_primary("s2", node, 0, committed));
  };
  h.node_in("b", announce("b", 2, 1));
  EXPECT_FALSE(h.take_batch());
  h.node_in("b", router::encode_peer(PeerKind::kept, 1, router::encode_kept("s2", 2, 2)));
  h.node_in("c", router::encode_peer(PeerKind::kept, 2, router::encode_kept("s2", 3, 3)));
  h.node_in("b", announce("b", 2, 1));
  EXPECT_FALSE(h.take_batch()) << "b's term 2 is behind c's: b may not know of writes acknowledged since";
  // c is s2's primary in term 3, its log committed up to lsn 2.
  h.node_in("c", announce("c", 3, 2));
  auto standing = h.take_batch();
  ASSERT_TRUE(standing);
  EXPECT_EQ(std::get<persistence::ShardVote>(standing->records[0]), (persistence::ShardVote{"s2", 3, "", "c", 2}))
      << "a learner until its log reaches lsn 2, and that is stored (a restart keeps it one)";
  h.confirm(standing->batch);
  for (int i = 0; i < 4; ++i) h.beat({"b"});  // c is down for a now
  std::string body;
  h.node_in("b", vote_request(true, 4, 3, 2));
  auto given = vote_given(h, "b", body);
  ASSERT_TRUE(given);
  EXPECT_FALSE(given->granted) << "a learner does not vote: it cannot know what was acknowledged";
  EXPECT_TRUE(h.take_sent(PeerKind::vote_request).empty()) << "nor does it stand";

  for (std::uint64_t lsn : {1u, 2u}) {
    h.node_in("c", router::encode_peer(PeerKind::log_entry, lsn,
                                       router::encode_shipped("s2", 3, 3, lsn == 1 ? 0 : 3, store::encode_records({}))));
    auto entry = h.take_batch();
    ASSERT_TRUE(entry) << lsn;
    h.confirm(entry->batch);
  }
  auto voter = h.take_batch();
  ASSERT_TRUE(voter) << "caught up: it votes again, and stores that";
  EXPECT_EQ(std::get<persistence::ShardVote>(voter->records[0]), (persistence::ShardVote{"s2", 3, "", "c", 0}));
  h.confirm(voter->batch);
  h.node_in("b", vote_request(true, 4, 3, 2));
  given = vote_given(h, "b", body);
  ASSERT_TRUE(given);
  EXPECT_TRUE(given->granted);
}

TEST(Failover, OfTwoMembersStandingAtOnceWithLogsAsFarAlongTheOneWhoseNameComesFirstGoesOn) {
  Harness h({}, peer_options(), failover_shards());
  ASSERT_EQ(beat_until_it_stands(h, {"c"}).size(), 2u) << "b, s2's primary, is gone: a stands (a pre-vote for term 2)";
  // c stood at the same heartbeat, its log as far along as a's: a does not help it, so
  // the two do not split the votes of term 2; c helps a (its name comes first).
  std::string body;
  h.node_in("c", vote_request(true, 2, 0, 0));
  auto given = vote_given(h, "c", body);
  ASSERT_TRUE(given);
  EXPECT_FALSE(given->granted);
  // A candidate further along gets the pre-vote all the same.
  h.node_in("c", vote_request(true, 2, 1, 3));
  given = vote_given(h, "c", body);
  ASSERT_TRUE(given);
  EXPECT_TRUE(given->granted);
}

namespace {

/// a's store after a restart: `room` of s1, entries 1-5 of s1's log stored as its
/// primary in term 1.
persistence::Snapshot restarted_primary_of_s1(const std::string& room) {
  persistence::Snapshot snapshot = with_rooms({room});
  snapshot.logs["s1"] = {1, 5};
  snapshot.votes["s1"] = persistence::ShardVote{"s1", 1, "a", "a"};
  return snapshot;
}

}  // namespace

TEST(Failover, APrimaryRestartedServesNoReadsOfItsShardUntilItsReplicasConfirmItsLog) {
  // a stored entries 1-5 of s1 as its primary, then restarted: entry 5 may be a tail no
  // majority had, which an election a did not hear of may have taken back.
  const std::string room = owned_by("a");
  Harness h(restarted_primary_of_s1(room), peer_options(), failover_shards());
  h.fx.clear();
  h.client("c1", History{room, 10, std::nullopt, std::nullopt});
  auto replies = h.take_client_replies();
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(error_code(replies[0].reply), errc::unavailable);
  EXPECT_NE(std::get<ErrorReply>(replies[0].reply.body).message.find("restarted"), std::string::npos);
  // b has the log as far: a majority (a and b) has it, in a's term. Reads go on.
  h.node_in("b", router::encode_peer(PeerKind::kept, 5, router::encode_kept("s1", 1, 1)));
  h.fx.clear();
  h.client("c1", History{room, 10, std::nullopt, std::nullopt});
  EXPECT_TRUE(h.take_client_replies().empty());
  auto sent = h.take<Effects::Send>();
  EXPECT_TRUE(std::any_of(sent.begin(), sent.end(), [](const Effects::Send& s) {
    auto m = store::receive(s.payload);
    return s.actor == "persistence" && m && std::holds_alternative<store::Read>(*m);
  })) << "read from the store now";
}

TEST(Failover, ARestartedPrimaryLeavesItsShardOutOfRoomListsUntilItsReplicasConfirmItsLog) {
  // As above: a's log of s1 may end in a tail an election took back, and the room book
  // it loaded shows that tail (its last seq, read markers). A room list or a summary
  // from it would show what the shard may never have acknowledged (a chaos run saw a
  // read marker move backwards so): a leaves s1 out and says so, and a gather counts
  // s1 as answered only by a node that did not leave it out.
  const std::string room = owned_by("a");
  Harness h(restarted_primary_of_s1(room), peer_options(), failover_shards());
  h.fx.clear();
  auto forwarded_list = [&](std::uint64_t corr) {
    h.node_in("dealer-of-b", router::encode_peer(PeerKind::forward, corr, encode_request({12, ListRooms{"ann"}})));
    auto replies = h.take_node_replies();
    EXPECT_EQ(replies.size(), 1u);
    auto reply = replies.empty() ? std::nullopt : std::optional(decode_reply(replies[0].body, Limits{}));
    EXPECT_TRUE(reply && *reply);
    return reply && *reply ? std::get<RoomsOk>((**reply).body) : RoomsOk{};
  };
  auto ok = forwarded_list(3);
  EXPECT_TRUE(ok.rooms.empty());
  EXPECT_TRUE(ok.summaries.empty());
  EXPECT_EQ(ok.missing_shards, (std::vector<std::string>{"s1"})) << "a names the shard it left out";

  // A client's list: b answers with its replica's copy of the room, c leaves s1 out too.
  auto gather = [&](std::uint64_t id, const RoomsOk& from_b, const RoomsOk& from_c) {
    h.client("client-1", ListRooms{"ann"}, id);
    for (const auto& f : h.take_forwards()) h.owner_replies(f.to.substr(1), f.corr, {id, f.to == "@b" ? from_b : from_c});
    auto replies = h.take_client_replies();
    EXPECT_EQ(replies.size(), 1u);
    return replies.empty() ? RoomsOk{} : std::get<RoomsOk>(replies[0].reply.body);
  };
  RoomSummary copy;
  copy.room = room;
  copy.role = Role::owner;
  RoomsOk left_out;
  left_out.missing_shards = {"s1"};
  ok = gather(9, RoomsOk{{room}, {}, {copy}}, left_out);
  EXPECT_EQ(ok.rooms, (std::vector<std::string>{room}));
  ASSERT_EQ(ok.summaries.size(), 1u);
  EXPECT_EQ(ok.summaries[0], copy) << "b's copy, not a's tail";
  EXPECT_TRUE(ok.missing.empty()) << "b answered for s1: complete";
  EXPECT_TRUE(ok.missing_shards.empty());
  // Nobody answers for s1: the reply is not complete, and says which nodes and shard.
  ok = gather(10, left_out, left_out);
  EXPECT_TRUE(ok.rooms.empty());
  EXPECT_EQ(ok.missing, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(ok.missing_shards, (std::vector<std::string>{"s1"}));

  // b has a's log as far, in a's term: a knows its log is committed and lists s1 again.
  h.node_in("b", router::encode_peer(PeerKind::kept, 5, router::encode_kept("s1", 1, 1)));
  h.fx.clear();
  ok = forwarded_list(4);
  EXPECT_EQ(ok.rooms, (std::vector<std::string>{room}));
  EXPECT_EQ(ok.summaries.size(), 1u);
  EXPECT_TRUE(ok.missing_shards.empty());
}

TEST(Failover, APrimaryThatStopsBeforeItsTermsFirstEntryIsStoredCountsThatEntryInItsLog) {
  Harness h({}, peer_options(), failover_shards());
  for (int i = 0; i < 10 && h.take_sent(PeerKind::vote_request).empty(); ++i) h.beat({"c"});
  h.from_peer("c", vote(true, 2));
  auto own = h.take_batch();
  ASSERT_TRUE(own);
  h.confirm(own->batch);
  h.from_peer("c", vote(false, 2));
  auto first = h.take_batch();  // its term's first entry, lsn 1, at persistence
  ASSERT_TRUE(first);
  // Before it is stored, c announces a later term: a follows c.
  h.node_in("c", router::encode_peer(PeerKind::primary, 3, router::encode_primary("s2", "c", 0, 0)));
  h.take_batch();  // a's standing
  h.confirm(first->batch);
  h.take_sent(PeerKind::kept);
  h.beat({"c"});
  auto kept = h.take_sent(PeerKind::kept);
  ASSERT_FALSE(kept.empty());
  EXPECT_EQ(kept.back().to, "@c");
  EXPECT_EQ(kept.back().corr, 1u) << "its log ends with that entry, stored: it says so, and c can answer 'D'";
  EXPECT_EQ(router::decode_kept(kept.back().body)->last_term, 2u);
}

// ---- catching up from a copy of the store (docs/REPLICATION.md) ---------------------

namespace {

/// The messages of type T chat sent to persistence (and forgets them).
template <class T>
std::vector<T> take_to_persistence(Harness& h) {
  std::vector<T> out;
  Effects rest;
  for (const auto& e : h.fx.list()) {
    if (auto* s = std::get_if<Effects::Send>(&e); s && s->actor == "persistence")
      if (auto m = store::decode(s->payload); m && std::holds_alternative<T>(*m)) {
        out.push_back(std::get<T>(std::move(*m)));
        continue;
      }
    rest.add(e);
  }
  h.fx = rest;
  return out;
}

std::vector<store::CopyOp> take_copy_ops(Harness& h) { return take_to_persistence<store::CopyOp>(h); }

void copy_done(Harness& h, store::CopyDone done) {
  h.deliver(Inbound::Via::peer, "persistence", {store::encode(done)});
}

constexpr std::uint64_t kChunk = 256 * 1024;

}  // namespace

TEST(CopyCatchUp, AReplicaBehindWhatTheLogKeepsIsSentTheStoreInAWindowOfChunksAgainAfterASilence) {
  persistence::Snapshot snapshot;
  snapshot.logs["s1"] = {1, 2000};
  NodeMetrics metrics("a");
  Harness h(snapshot, peer_options(), failover_shards(), &metrics.chat());
  h.beat({"b", "c"});
  h.fx.clear();
  // b lost its data: it has nothing of s1's log, and the log's start is trimmed.
  h.node_in("b", router::encode_peer(PeerKind::kept, 0, router::encode_kept("s1", 0, 1)));
  h.beat({"b", "c"});
  auto reads = take_to_persistence<store::ReadLog>(h);
  ASSERT_EQ(reads.size(), 1u) << "b is behind: its entries are read from the log";
  EXPECT_EQ(reads[0].after, 0u);
  h.fx.clear();
  h.deliver(Inbound::Via::peer, "persistence", {store::encode(store::LogPage{reads[0].corr, {}, true})});
  auto ops = take_copy_ops(h);
  ASSERT_EQ(ops.size(), 1u) << "trimmed: a copy of the store is made";
  EXPECT_EQ(ops[0].kind, store::CopyOp::Kind::make);
  const std::uint64_t id = ops[0].copy, size = 10 * kChunk + 100;

  // Read and sent chunk by chunk, at most 8 chunks past what b acknowledged.
  copy_done(h, store::CopyDone{ops[0].corr, size});
  std::vector<Sent> chunks;
  for (int i = 0; i < 20; ++i) {
    ops = take_copy_ops(h);
    if (ops.empty()) break;
    ASSERT_EQ(ops.size(), 1u) << "one read at a time";
    ASSERT_EQ(ops[0].kind, store::CopyOp::Kind::read);
    EXPECT_EQ(ops[0].copy, id);
    copy_done(h, store::CopyDone{ops[0].corr, 0, std::string(std::min(kChunk, size - ops[0].offset), 'x')});
    for (auto& s : h.take_sent(PeerKind::chunk)) chunks.push_back(std::move(s));
  }
  ASSERT_EQ(chunks.size(), 8u) << "a window of 8 chunks";
  for (std::size_t i = 0; i < chunks.size(); ++i) {
    EXPECT_EQ(chunks[i].to, "@b");
    EXPECT_EQ(chunks[i].corr, i * kChunk) << "the number is the chunk's offset";
    auto chunk = router::decode_chunk(chunks[i].body);
    ASSERT_TRUE(chunk);
    EXPECT_EQ(chunk->shard, "s1");
    EXPECT_EQ(chunk->copy, id);
    EXPECT_EQ(chunk->size, size);
  }
  EXPECT_TRUE(h.take_sent(PeerKind::log_entry).empty()) << "no entries while a copy is on its way";

  // b acknowledges two chunks: two more go. Then it says nothing for a heartbeat: what
  // it has not acknowledged goes again.
  h.node_in("b", router::encode_peer(PeerKind::had, 2 * kChunk, router::encode_had("s1", id)));
  auto answer_reads = [&] {
    std::vector<std::uint64_t> offsets;
    for (int i = 0; i < 20; ++i) {
      ops = take_copy_ops(h);
      if (ops.empty()) break;
      offsets.push_back(ops[0].offset);
      copy_done(h, store::CopyDone{ops[0].corr, 0, std::string(std::min(kChunk, size - ops[0].offset), 'x')});
    }
    h.take_sent(PeerKind::chunk);
    return offsets;
  };
  EXPECT_EQ(answer_reads(), (std::vector<std::uint64_t>{8 * kChunk, 9 * kChunk}));
  h.beat({"b", "c"});
  EXPECT_TRUE(answer_reads().empty()) << "b acknowledged something since the last heartbeat";
  h.beat({"b", "c"});
  auto again = answer_reads();
  ASSERT_FALSE(again.empty()) << "nothing new from b for a heartbeat";
  EXPECT_EQ(again.front(), 2 * kChunk) << "from what b acknowledged";

  // b has it all: the copy is deleted, and b's report of the copy's position counts.
  h.node_in("b", router::encode_peer(PeerKind::had, size, router::encode_had("s1", id)));
  ops = take_copy_ops(h);
  ASSERT_EQ(ops.size(), 1u);
  EXPECT_EQ(ops[0].kind, store::CopyOp::Kind::drop);
  EXPECT_EQ(ops[0].copy, id);
  EXPECT_EQ(h.chat.stats().copies_sent, 1u);
  EXPECT_EQ(metrics.chat().copies_sent.Value(), 1.0) << "counted for operators (docs/METRICS.md)";
  h.node_in("b", router::encode_peer(PeerKind::kept, 1990, router::encode_kept("s1", 1, 1)));
  reads = take_to_persistence<store::ReadLog>(h);
  ASSERT_EQ(reads.size(), 1u) << "the entries after the copy's position, from the log, at once";
  EXPECT_EQ(reads[0].after, 1990u);
}

TEST(CopyCatchUp, AReplicaHoldingATailItCannotTakeBackAsksForACopyWritesItInOrderAndInstallsIt) {
  const std::string old_room = owned_by("b"), new_room = owned_by("b", 1);
  persistence::Snapshot snapshot = with_rooms({old_room});
  snapshot.logs["s2"] = {1, 3};
  NodeMetrics metrics("a");
  Harness h(snapshot, peer_options(), failover_shards(), &metrics.chat());
  h.beat({"b", "c"});
  h.fx.clear();
  // b says a's log is not its after lsn 1; the tail cannot be taken back (a room change).
  h.node_in("b", router::encode_peer(PeerKind::diverged, 1, "s2"));
  auto truncate = take_to_persistence<store::Truncate>(h);
  ASSERT_EQ(truncate.size(), 1u);
  h.fx.clear();
  h.deliver(Inbound::Via::peer, "persistence",
            {store::encode(store::Truncated{truncate[0].corr, {}, Error{errc::internal, "a room change"}})});
  h.beat({"b", "c"});
  auto asked = h.take_sent(PeerKind::copy);
  ASSERT_EQ(asked.size(), 1u) << "it holds the shard, and asks its primary for a copy";
  EXPECT_EQ(asked[0].to, "@b");
  EXPECT_EQ(asked[0].body, "s2");

  // The chunks are written in order; a duplicate and one past a gap are not.
  const std::uint64_t size = kChunk + 1000;
  auto chunk = [&](std::uint64_t offset, std::uint64_t bytes, std::uint64_t id = 7) {
    h.node_in("b", router::encode_peer(PeerKind::chunk, offset,
                                       router::encode_chunk({"s2", id, size, std::string(bytes, 'y')})));
  };
  h.fx.clear();
  chunk(0, kChunk);
  chunk(0, kChunk);
  chunk(kChunk + 10, 990);
  auto ops = take_copy_ops(h);
  ASSERT_EQ(ops.size(), 1u);
  EXPECT_EQ(ops[0].kind, store::CopyOp::Kind::write);
  EXPECT_EQ(ops[0].shard, "s2");
  EXPECT_EQ(ops[0].offset, 0u);
  EXPECT_EQ(ops[0].data.size(), kChunk);
  chunk(kChunk, 1000);
  auto second = take_copy_ops(h);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].offset, kChunk);
  copy_done(h, store::CopyDone{ops[0].corr, kChunk});
  auto had = h.take_sent(PeerKind::had);
  ASSERT_EQ(had.size(), 1u);
  EXPECT_EQ(had[0].corr, kChunk) << "what is written is acknowledged";
  EXPECT_EQ(router::decode_had(had[0].body)->second, 7u);
  copy_done(h, store::CopyDone{second[0].corr, 1000});
  EXPECT_EQ(h.take_sent(PeerKind::had).at(0).corr, size);
  ops = take_copy_ops(h);
  ASSERT_EQ(ops.size(), 1u) << "all of it written: installed";
  EXPECT_EQ(ops[0].kind, store::CopyOp::Kind::install);
  EXPECT_EQ(ops[0].shard, "s2");
  // An entry that comes meanwhile is not taken: the log goes on after the copy's position.
  h.node_in("b", router::encode_peer(PeerKind::log_entry, 4, router::encode_shipped("s2", 1, 1, 1, store::encode_records({}))));
  EXPECT_FALSE(h.take_batch());

  // b is the primary of term 2, its log committed up to lsn 30 (the copy goes to 40).
  h.node_in("b", router::encode_peer(PeerKind::primary, 2, router::encode_primary("s2", "b", 0, 30)));
  store::CopyDone installed{ops[0].corr, 1};
  installed.position = {2, 40};
  installed.terms = {{1, 1}, {2, 30}};
  installed.view = {persistence::CreateRoom{new_room, "bob", 5}, persistence::AddMember{new_room, "bob", Role::owner},
                    persistence::StoredMessage{new_room, 6, "bob", 9, "", "cm6"}};
  h.fx.clear();
  copy_done(h, installed);
  auto kept = h.take_sent(PeerKind::kept);
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_EQ(kept[0].corr, 40u) << "its log goes on from the copy's position";
  EXPECT_EQ(router::decode_kept(kept[0].body)->last_term, 2u);
  EXPECT_EQ(h.chat.stats().copies_installed, 1u);
  EXPECT_EQ(metrics.chat().copies_installed.Value(), 1.0);
  h.beat({"b", "c"});
  EXPECT_TRUE(h.take_sent(PeerKind::copy).empty()) << "it holds the shard no more";

  // With b down, a serves no reads of s2 yet: which of the copy's entries are committed
  // it does not know (the copy holds b's tail as it was), and an election could take
  // them back (docs/REPLICATION.md, "Known gaps", closed).
  for (int i = 0; i < 4; ++i) h.beat({"c"});
  h.fx.clear();
  h.client("c1", LastSeq{new_room}, 1);
  auto held = h.take_client_replies();
  ASSERT_EQ(held.size(), 1u);
  EXPECT_EQ(error_code(held[0].reply), errc::unavailable) << "not served here while its primary is away";
  // b is back and says its log is committed as far as the copy goes; then it is down
  // again: a serves s2's reads from its view, which is the copy's.
  h.beat({"b", "c"});
  h.node_in("b", router::encode_peer(PeerKind::primary, 2, router::encode_primary("s2", "b", 0, 40)));
  for (int i = 0; i < 4; ++i) h.beat({"c"});
  h.fx.clear();
  h.client("c1", LastSeq{new_room}, 1);
  h.client("c1", LastSeq{old_room}, 2);
  auto replies = h.take_client_replies();
  ASSERT_EQ(replies.size(), 2u);
  ASSERT_TRUE(std::holds_alternative<LastSeqOk>(replies[0].reply.body)) << "served here";
  EXPECT_EQ(std::get<LastSeqOk>(replies[0].reply.body).seq, 6u);
  EXPECT_EQ(error_code(replies[1].reply), errc::no_such_room) << "a room the copy does not have is gone";
}

TEST(Failover, AnEntryFromThePrimaryEndsAPreVoteSoNoCandidateWinsWhileItsLogIsStillBeingWritten) {
  Harness h({}, peer_options(), failover_shards());
  std::vector<Sent> asked;
  for (int i = 0; i < 10 && asked.empty(); ++i) {
    h.beat({"c"});  // b answers no pings: down, for a
    asked = h.take_sent(PeerKind::vote_request);
  }
  ASSERT_FALSE(asked.empty()) << "a asks whether it would be voted for";
  // b's entry comes after all (its pings were lost, its link is not): b is there.
  h.node_in("b", router::encode_peer(PeerKind::log_entry, 1,
                                     router::encode_shipped("s2", 1, 1, 0, store::encode_records({}))));
  auto entry = h.take_batch();
  ASSERT_TRUE(entry) << "the entry is taken";
  h.from_peer("c", vote(true, 2));
  EXPECT_FALSE(h.take_batch()) << "the pre-vote is over: a does not raise its term on c's yes";
  EXPECT_TRUE(h.take_sent(PeerKind::vote_request).empty());
}

TEST(Failover, APrimaryBringsAReplicaUpToDateWithEntriesOfEarlierTerms) {
  // a follows c, the primary of s2 in term 3; a's log ends at lsn 5 (term 1), c's
  // goes on with entry 6, written in term 1 by b before c was elected.
  persistence::Snapshot snapshot;
  snapshot.logs["s2"] = {1, 5};
  snapshot.terms["s2"] = {{1, 1}};
  snapshot.votes["s2"] = persistence::ShardVote{"s2", 3, "c", "c"};
  Harness h(snapshot, peer_options(), failover_shards());
  h.beat({"b", "c"});
  h.fx.clear();
  h.node_in("c", router::encode_peer(PeerKind::log_entry, 6,
                                     router::encode_shipped("s2", 3, 1, 1, store::encode_records({}))));
  auto batch = h.take_batch();
  ASSERT_TRUE(batch) << "an entry of term 1 from the primary of term 3 is taken: the primary's term is what counts";
  ASSERT_EQ(batch->records.size(), 1u);
  EXPECT_EQ(std::get<persistence::LogEntry>(batch->records[0]), (persistence::LogEntry{"s2", 1, 6, store::encode_records({})}))
      << "stored with the term it was written in";
  EXPECT_TRUE(h.take_sent(PeerKind::kept).empty()) << "not refused";
  // From a primary of term 2 (older than a's 3), the same entry is refused.
  h.node_in("b", router::encode_peer(PeerKind::log_entry, 7,
                                     router::encode_shipped("s2", 2, 1, 1, store::encode_records({}))));
  EXPECT_FALSE(h.take_batch());
  auto kept = h.take_sent(PeerKind::kept);
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_EQ(router::decode_kept(kept[0].body)->term, 3u) << "b is told of term 3";
}

namespace {

/// a, a replica of s2 (whose primary is b), stores b's entry 1: message 1 of `room`.
void store_entry_from_b(Harness& h, const std::string& room) {
  h.beat({"b", "c"});
  h.fx.clear();
  h.node_in("b", log_entry_frame(1, {persistence::StoredMessage{room, 1, "ann", 5, "hi", "m1"}}));
  auto applied = h.take_batch();
  ASSERT_TRUE(applied);
  h.confirm(applied->batch);
}

/// `room`'s last seq as a answers it (~0 if it answers anything else).
std::uint64_t last_seq_at(Harness& h, const std::string& room) {
  h.fx.clear();
  h.client("c1", LastSeq{room}, 9);
  auto replies = h.take_client_replies();
  EXPECT_EQ(replies.size(), 1u);
  return replies.size() != 1 || !std::holds_alternative<LastSeqOk>(replies[0].reply.body)
             ? ~std::uint64_t{0}
             : std::get<LastSeqOk>(replies[0].reply.body).seq;
}

}  // namespace

TEST(Failover, AReplicaOfAShardThatFailsOverShowsAMessageOnlyOnceItsPrimarySaysItIsCommitted) {
  const std::string room = owned_by("b");
  Harness h(with_rooms({room}), peer_options(), failover_shards());
  store_entry_from_b(h, room);
  for (int i = 0; i < 4; ++i) h.beat({"c"});  // b is down: a serves s2's reads itself
  EXPECT_EQ(last_seq_at(h, room), 0u) << "stored here, but it could still be taken back: not shown";
  h.node_in("b", router::encode_peer(PeerKind::primary, 1, router::encode_primary("s2", "b", 0, 1)));
  EXPECT_EQ(last_seq_at(h, room), 1u) << "b says entry 1 is committed";
}

TEST(Failover, ACommitPointOfANewPrimaryShowsNothingOfAReplicasLogUntilItsEntriesAreKnownToMatch) {
  const std::string room = owned_by("b");
  Harness h(with_rooms({room}), peer_options(), failover_shards());
  store_entry_from_b(h, room);
  // c is elected (term 2) and says its log is committed to lsn 5: a's entry 1 may not be
  // c's entry 1 (b could have written it and lost it), so it is not shown yet.
  h.node_in("c", router::encode_peer(PeerKind::primary, 2, router::encode_primary("s2", "c", 0, 5)));
  h.take_batch();  // a's standing: it follows c
  for (int i = 0; i < 4; ++i) h.beat({"b"});  // c down for a: a serves s2's reads itself
  EXPECT_EQ(last_seq_at(h, room), 0u);
  // c's entry 2 follows an entry of term 1 at lsn 1, as a's does: their logs agree up to it.
  h.node_in("c", router::encode_peer(PeerKind::log_entry, 2,
                                     router::encode_shipped("s2", 2, 2, 1, store::encode_records({}))));
  auto second = h.take_batch();
  ASSERT_TRUE(second);
  h.confirm(second->batch);
  EXPECT_EQ(last_seq_at(h, room), 1u) << "a's entry 1 is c's, and committed";
}

TEST(ChatReplication, AShardLogEntryCarriesWhatAMessageAnswersAndItsThread) {
  persistence::StoredMessage reply{"r", 7, "bob", 1000, "yes", "c7"};
  reply.entry.reply_to = 5;
  reply.entry.thread = 3;
  persistence::StoredMessage plain{"r", 8, "bob", 1000, "and", "c8"};
  const std::vector<persistence::Record> both = {reply, plain}, alone = {plain};
  auto back = store::decode_records(store::encode_records(both), Limits{});
  ASSERT_TRUE(back) << back.error().message;
  ASSERT_EQ(back->size(), 2u);
  const auto& carried = std::get<persistence::StoredMessage>(back->front());
  EXPECT_EQ(carried.entry.reply_to, 5u);
  EXPECT_EQ(carried.entry.thread, 3u);
  EXPECT_EQ(carried.entry.kind, EntryKind::message);
  EXPECT_TRUE(std::get<persistence::StoredMessage>(back->back()).entry.plain());
  EXPECT_EQ(static_cast<unsigned char>(store::encode_records(alone).at(1)), 0x97u)
      << "a plain message is encoded as before threads";
}
