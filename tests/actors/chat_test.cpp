// The chat actor as a pure handler: requests in, effects out, a simulated clock, no
// sockets. Persistence is played by the test: it reads the batch chat sends and
// answers as the persistence actor would.
#include <gtest/gtest.h>

#include "switchboard/actors/chat.hpp"
#include "switchboard/transport/codec.hpp"

using namespace switchboard;
using namespace switchboard::actors;
using namespace switchboard::transport;

namespace {

struct Harness {
  explicit Harness(persistence::Snapshot snapshot = {}, ChatOptions options = {})
      : chat(options, snapshot) {
    chat.on_start({"inproc://chat"}, {"tcp://127.0.0.1:7401"}, now, fx);
  }
  ~Harness() {  // batches handed over to a persistence that never took them
    for (const auto& e : fx.list())
      if (auto* s = std::get_if<Effects::Send>(&e); s && s->actor == "persistence") (void)store::receive(s->payload);
  }
  Harness(const Harness&) = delete;

  void request(const std::string& peer, RequestBody body, std::uint64_t id = 0,
               std::optional<std::string> as = std::nullopt) {
    std::string frame = encode_request({id ? id : next_id++, std::move(body), std::move(as)});
    raw(peer, {frame});
  }
  /// One request made for user `as` (nullopt: by a service for the node), carried
  /// through its batch when it makes one; its reply.
  Reply as(const std::optional<std::string>& user, RequestBody body) {
    request("c", std::move(body), 0, user);
    drain();
    if (auto b = take_batch()) confirm(b->batch);
    auto replies = take_replies();
    EXPECT_EQ(replies.size(), 1u);
    return replies.empty() ? Reply{} : replies.back().second;
  }
  void raw(const std::string& peer, std::vector<std::string> frames) {
    Inbound in;
    in.via = Inbound::Via::mailbox;
    in.sender = peer;
    for (const auto& f : frames) in.frames.push_back(f);
    chat.on_message(in, now, fx);
  }
  void drain() { chat.on_drained(now, fx); }

  /// The batch chat sent to persistence in the effects so far (and forgets the send).
  std::optional<store::Append> take_batch() {
    auto list = fx.list();
    std::optional<store::Append> batch;
    Effects rest;
    for (const auto& e : list) {
      if (auto* s = std::get_if<Effects::Send>(&e); s && !batch && s->actor == "persistence") {
        auto m = store::receive(s->payload);
        if (m && std::holds_alternative<store::Append>(*m)) {
          batch = std::get<store::Append>(*m);
          continue;
        }
      }
      keep(rest, e);
    }
    fx = rest;
    return batch;
  }
  void confirm(std::uint64_t batch, Error error = {errc::ok, {}}) {
    std::string frame = store::encode(store::Appended{batch, error});
    Inbound in;
    in.via = Inbound::Via::peer;
    in.sender = "persistence";
    in.frames = {frame};
    chat.on_message(in, now, fx);
    chat.on_drained(now, fx);
  }
  /// Replies sent so far, in order, decoded (and forgotten).
  std::vector<std::pair<std::string, Reply>> take_replies() {
    std::vector<std::pair<std::string, Reply>> out;
    Effects rest;
    for (const auto& e : fx.list()) {
      if (auto* r = std::get_if<Effects::Reply>(&e)) {
        auto d = decode_reply(r->payload, Limits{});
        EXPECT_TRUE(d);
        out.emplace_back(r->to, *d);
      } else {
        keep(rest, e);
      }
    }
    fx = rest;
    return out;
  }
  std::vector<RoomMessage> take_published() {
    std::vector<RoomMessage> out;
    Effects rest;
    for (const auto& e : fx.list()) {
      if (auto* p = std::get_if<Effects::Publish>(&e)) {
        auto m = decode_message(p->payload, Limits{});
        EXPECT_TRUE(m);
        EXPECT_EQ(p->topic, room_topic(m->room));
        out.push_back(*m);
      } else {
        keep(rest, e);
      }
    }
    fx = rest;
    return out;
  }
  static void keep(Effects& into, const Effects::Effect& e) { into.add(e); }

  /// Creates a room with these members, through the whole path.
  void room(const std::string& name, std::vector<std::string> users) {
    request("setup", CreateRoom{name, users.at(0)});
    for (std::size_t i = 1; i < users.size(); ++i) request("setup", Join{name, users[i]});
    drain();
    auto b = take_batch();
    EXPECT_TRUE(b);
    confirm(b->batch);
    take_replies();
  }

  Chat chat;
  Now now{SteadyClock::time_point{}, 1'700'000'000'000};
  Effects fx;
  std::uint64_t next_id = 1;
};

const PublishOk& ack(const Reply& r) { return std::get<PublishOk>(r.body); }
errc error_code(const Reply& r) {
  return std::holds_alternative<ErrorReply>(r.body) ? std::get<ErrorReply>(r.body).code : errc::ok;
}

}  // namespace

TEST(Chat, PublishIsAckedAndPublishedOnlyAfterPersistenceConfirms) {
  Harness h;
  h.room("general", {"ann"});
  h.request("c1", Publish{"general", "ann", "m1", "hello"});
  h.drain();
  auto batch = h.take_batch();
  ASSERT_TRUE(batch);
  EXPECT_TRUE(h.take_replies().empty());
  EXPECT_TRUE(h.take_published().empty());
  ASSERT_EQ(batch->records.size(), 1u);
  auto& stored = std::get<persistence::StoredMessage>(batch->records[0]);
  EXPECT_EQ(stored.seq, 1u);
  EXPECT_EQ(stored.body, "hello");
  EXPECT_EQ(stored.ts_ms, h.now.wall_ms);

  h.confirm(batch->batch);
  auto published = h.take_published();
  ASSERT_EQ(published.size(), 1u);
  EXPECT_EQ(published[0].seq, 1u);
  auto replies = h.take_replies();
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0].first, "c1");
  EXPECT_EQ(ack(replies[0].second).seq, 1u);
  EXPECT_FALSE(ack(replies[0].second).duplicate);
}

TEST(Chat, SeqsAreGaplessPerRoomAcrossBatches) {
  Harness h;
  h.room("a", {"ann"});
  h.room("b", {"ann"});
  std::map<std::string, std::vector<std::uint64_t>> seqs;
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 4; ++i)
      h.request("c", Publish{i % 2 ? "a" : "b", "ann", "m" + std::to_string(round * 10 + i), "x"});
    h.drain();
    auto batch = h.take_batch();
    ASSERT_TRUE(batch);
    h.confirm(batch->batch);
    for (auto& m : h.take_published()) seqs[m.room].push_back(m.seq);
  }
  EXPECT_EQ(seqs["a"], (std::vector<std::uint64_t>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(seqs["b"], (std::vector<std::uint64_t>{1, 2, 3, 4, 5, 6}));
}

TEST(Chat, TwoBatchesInFlightAndEverythingElseWaitsForTheNext) {
  Harness h;
  h.room("general", {"ann"});
  h.request("c", Publish{"general", "ann", "m1", "1"});
  h.drain();
  auto first = h.take_batch();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->after, 0u);
  h.request("c", Publish{"general", "ann", "m2", "2"});
  h.drain();
  auto second = h.take_batch();
  ASSERT_TRUE(second) << "a second batch may go while the first is being stored";
  EXPECT_EQ(second->after, first->batch) << "the second names the batch it follows";
  EXPECT_EQ(std::get<persistence::StoredMessage>(second->records.at(0)).seq, 2u);
  for (int i = 3; i <= 6; ++i) {
    h.request("c", Publish{"general", "ann", "m" + std::to_string(i), "x"});
    h.drain();
    EXPECT_FALSE(h.take_batch()) << "a third batch went out while two were in flight";
  }
  h.confirm(first->batch);
  auto third = h.take_batch();
  ASSERT_TRUE(third);
  EXPECT_EQ(third->after, second->batch);
  EXPECT_EQ(third->records.size(), 4u);  // the group commit took all that waited
  EXPECT_EQ(std::get<persistence::StoredMessage>(third->records.front()).seq, 3u);
  EXPECT_EQ(std::get<persistence::StoredMessage>(third->records.back()).seq, 6u);
  // Acks come in seq order, batch by batch.
  auto replies = h.take_replies();
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(ack(replies[0].second).seq, 1u);
  h.confirm(second->batch);
  h.confirm(third->batch);
  std::vector<std::uint64_t> seqs;
  for (auto& [peer, r] : h.take_replies()) seqs.push_back(ack(r).seq);
  EXPECT_EQ(seqs, (std::vector<std::uint64_t>{2, 3, 4, 5, 6}));
  EXPECT_TRUE(h.chat.idle());
}

TEST(Chat, FailureOfTheFirstOfTwoBatchesRollsBackBothAndSeqsStayGapless) {
  Harness h;
  h.room("general", {"ann"});
  h.request("c", Publish{"general", "ann", "m1", "1"});
  h.drain();
  auto first = h.take_batch();
  h.request("c", Join{"general", "bob"});
  h.request("c", Publish{"general", "ann", "m2", "2"});
  h.drain();
  auto second = h.take_batch();
  ASSERT_TRUE(first && second);

  h.confirm(first->batch, Error{errc::unavailable, "disk on fire"});
  auto replies = h.take_replies();
  ASSERT_EQ(replies.size(), 3u) << "every request of both batches is answered";
  for (auto& [peer, r] : replies) EXPECT_EQ(error_code(r), errc::unavailable);
  EXPECT_TRUE(h.take_published().empty());
  // Persistence refuses the second (it follows a failure); chat has already let it go.
  h.confirm(second->batch, Error{errc::unavailable, "follows a batch that was not stored"});
  EXPECT_TRUE(h.take_replies().empty());
  EXPECT_TRUE(h.chat.idle());

  // Retries start again from seq 1, and bob's join was undone.
  h.request("c", Publish{"general", "ann", "m2", "2"});
  h.request("c", Publish{"general", "bob", "b1", "hi"});
  h.drain();
  auto retry = h.take_batch();
  ASSERT_TRUE(retry);
  EXPECT_EQ(retry->after, 0u);
  ASSERT_EQ(retry->records.size(), 1u);
  EXPECT_EQ(std::get<persistence::StoredMessage>(retry->records[0]).seq, 1u);
  EXPECT_EQ(error_code(h.take_replies().at(0).second), errc::not_member);
}

TEST(Chat, RetryWithSameClientIdIsAckedWithOriginalSeq) {
  Harness h;
  h.room("general", {"ann"});
  h.request("c", Publish{"general", "ann", "same", "hello"});
  h.drain();
  auto batch = h.take_batch();
  h.confirm(batch->batch);
  auto first = h.take_replies();
  ASSERT_EQ(first.size(), 1u);
  ASSERT_EQ(h.take_published().size(), 1u);

  h.request("c", Publish{"general", "ann", "same", "hello"});
  h.drain();
  EXPECT_FALSE(h.take_batch()) << "a retry must not be stored again";
  auto retry = h.take_replies();
  ASSERT_EQ(retry.size(), 1u);
  EXPECT_EQ(ack(retry[0].second).seq, ack(first[0].second).seq);
  EXPECT_EQ(ack(retry[0].second).ts_ms, ack(first[0].second).ts_ms);
  EXPECT_TRUE(ack(retry[0].second).duplicate);
  EXPECT_TRUE(h.take_published().empty()) << "a retry must not be delivered again";
}

TEST(Chat, RetryWhileInFlightIsAnsweredWhenTheOriginalIsDurable) {
  Harness h;
  h.room("general", {"ann"});
  h.request("c", Publish{"general", "ann", "same", "hello"}, 100);
  h.drain();
  auto batch = h.take_batch();
  h.request("c", Publish{"general", "ann", "same", "hello"}, 101);
  h.drain();
  EXPECT_TRUE(h.take_replies().empty());
  h.confirm(batch->batch);
  EXPECT_FALSE(h.take_batch());
  auto replies = h.take_replies();
  ASSERT_EQ(replies.size(), 2u);
  EXPECT_EQ(replies[0].second.id, 100u);
  EXPECT_EQ(replies[1].second.id, 101u);
  EXPECT_EQ(ack(replies[0].second).seq, 1u);
  EXPECT_EQ(ack(replies[1].second).seq, 1u);
  EXPECT_TRUE(ack(replies[1].second).duplicate);
  EXPECT_EQ(h.take_published().size(), 1u);
}

TEST(Chat, FailedBatchRollsBackSeqsAndTheRetrySucceeds) {
  Harness h;
  h.room("general", {"ann"});
  h.request("c", Publish{"general", "ann", "m1", "hello"});
  h.request("c", Join{"general", "bob"});
  h.drain();
  auto batch = h.take_batch();
  h.confirm(batch->batch, Error{errc::storage_full, "map full"});
  auto replies = h.take_replies();
  ASSERT_EQ(replies.size(), 2u);
  EXPECT_EQ(error_code(replies[0].second), errc::storage_full);
  EXPECT_EQ(error_code(replies[1].second), errc::storage_full);
  EXPECT_TRUE(h.take_published().empty());

  // bob's join was rolled back: he may not publish.
  h.request("c", Publish{"general", "bob", "b1", "hi"});
  // ann's retry gets seq 1 again: nothing was stored, so no gap.
  h.request("c", Publish{"general", "ann", "m1", "hello"});
  h.drain();
  auto retry = h.take_batch();
  ASSERT_TRUE(retry);
  ASSERT_EQ(retry->records.size(), 1u);
  EXPECT_EQ(std::get<persistence::StoredMessage>(retry->records[0]).seq, 1u);
  auto refused = h.take_replies();
  ASSERT_EQ(refused.size(), 1u);
  EXPECT_EQ(error_code(refused[0].second), errc::not_member);
}

TEST(Chat, RoomsMustExistAndPublishersMustBeMembers) {
  Harness h;
  h.room("general", {"ann"});
  h.request("c", Publish{"nowhere", "ann", "m1", "x"});
  h.request("c", Publish{"general", "eve", "m2", "x"});
  h.request("c", Join{"nowhere", "ann"});
  h.request("c", History{"nowhere", 10, {}, {}});
  h.drain();
  EXPECT_FALSE(h.take_batch());
  auto replies = h.take_replies();
  ASSERT_EQ(replies.size(), 4u);
  std::multiset<errc> codes;
  for (auto& [peer, r] : replies) codes.insert(error_code(r));
  EXPECT_EQ(codes.count(errc::no_such_room), 3u);
  EXPECT_EQ(codes.count(errc::not_member), 1u);
}

TEST(Chat, RoomOperationsAreIdempotentAndListed) {
  Harness h;
  h.request("c", CreateRoom{"general", "ann"});
  h.request("c", CreateRoom{"general", "bob"});
  h.request("c", Join{"general", "bob"});
  h.request("c", Join{"general", "bob"});
  h.drain();
  h.confirm(h.take_batch()->batch);
  auto replies = h.take_replies();
  ASSERT_EQ(replies.size(), 4u);
  EXPECT_TRUE(std::get<CreateRoomOk>(replies[0].second.body).created);
  EXPECT_FALSE(std::get<CreateRoomOk>(replies[1].second.body).created);
  EXPECT_TRUE(std::get<JoinOk>(replies[2].second.body).joined);
  EXPECT_FALSE(std::get<JoinOk>(replies[3].second.body).joined);

  h.request("c", Members{"general"});
  h.request("c", ListRooms{"bob"});
  h.request("c", ListRooms{"zed"});
  replies = h.take_replies();
  EXPECT_EQ(std::get<MembersOk>(replies[0].second.body).members, (std::vector<std::string>{"ann", "bob"}));
  EXPECT_EQ(std::get<RoomsOk>(replies[1].second.body).rooms, (std::vector<std::string>{"general"}));
  EXPECT_TRUE(std::get<RoomsOk>(replies[2].second.body).rooms.empty());
}

TEST(Chat, RestartCarriesOnSeqsAndRecognisesRetriesFromTheSnapshot) {
  persistence::Snapshot snapshot;
  snapshot.rooms["general"] = persistence::RoomState{"ann", 1, 41, {{"ann", Role::owner}}};
  snapshot.recent.push_back({"general", "ann", "before-restart", 41, 1'700'000'000'000});
  Harness h(snapshot);
  h.request("c", Publish{"general", "ann", "before-restart", "x"});
  h.request("c", Publish{"general", "ann", "after-restart", "y"});
  h.drain();
  auto batch = h.take_batch();
  ASSERT_TRUE(batch);
  ASSERT_EQ(batch->records.size(), 1u);
  EXPECT_EQ(std::get<persistence::StoredMessage>(batch->records[0]).seq, 42u);
  auto replies = h.take_replies();
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(ack(replies[0].second).seq, 41u);
  EXPECT_TRUE(ack(replies[0].second).duplicate);
}

TEST(Chat, DedupWindowForgetsOldPublishes) {
  ChatOptions options;
  options.limits.dedup_window = std::chrono::minutes(1);
  Harness h({}, options);
  h.room("general", {"ann"});
  h.request("c", Publish{"general", "ann", "old", "x"});
  h.drain();
  h.confirm(h.take_batch()->batch);
  h.take_replies();
  h.now.wall_ms += 61'000;  // past the window: the next commit forgets "old"
  h.request("c", Publish{"general", "ann", "new", "x"});
  h.drain();
  h.confirm(h.take_batch()->batch);
  h.take_replies();
  h.request("c", Publish{"general", "ann", "old", "x"});
  h.drain();
  auto batch = h.take_batch();
  ASSERT_TRUE(batch) << "beyond the dedup window the id is new again";
  EXPECT_EQ(std::get<persistence::StoredMessage>(batch->records[0]).seq, 3u);
}

TEST(Chat, BadFramesGetErrorRepliesAndChatKeepsServing) {
  Harness h;
  h.raw("c", {"\xc1"});
  h.raw("c", {"a", "b"});
  h.raw("c", {});
  h.request("c", Ping{}, 9);
  auto replies = h.take_replies();
  ASSERT_EQ(replies.size(), 4u);
  EXPECT_EQ(error_code(replies[0].second), errc::bad_frame);
  EXPECT_EQ(error_code(replies[1].second), errc::bad_frame);
  EXPECT_EQ(error_code(replies[2].second), errc::bad_frame);
  EXPECT_EQ(replies[3].second.id, 9u);
  EXPECT_TRUE(std::holds_alternative<PingOk>(replies[3].second.body));
}

TEST(Chat, HistoryGoesToPersistenceAndTheAnswerIsRelayed) {
  Harness h;
  h.room("general", {"ann"});
  h.request("c", History{"general", 5000, 10, {}}, 33);
  std::optional<store::Read> read;
  for (const auto& e : h.fx.list())
    if (auto* s = std::get_if<Effects::Send>(&e)) read = std::get<store::Read>(*store::decode(s->payload));
  h.fx.clear();
  ASSERT_TRUE(read);
  EXPECT_EQ(read->mode, store::Read::Mode::before);
  EXPECT_EQ(read->seq, 10u);
  EXPECT_EQ(read->limit, Limits{}.max_history_page);  // capped
  EXPECT_EQ(read->reply_id, 33u);

  std::string frame = store::encode(store::Page{read->corr, encode_reply({33, HistoryOk{{}, false}})});
  Inbound in{Inbound::Via::peer, "persistence", {frame}};
  h.chat.on_message(in, h.now, h.fx);
  auto replies = h.take_replies();
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0].first, "c");
  EXPECT_EQ(replies[0].second.id, 33u);
  EXPECT_TRUE(h.chat.idle());
}

TEST(Chat, AUserMayBeInAtMostMaxRoomsPerUserAndRolledBackJoinsDoNotCount) {
  ChatOptions options;
  options.limits.max_rooms_per_user = 2;
  persistence::Snapshot snapshot;
  snapshot.rooms["old"].members = {{"ann", Role::owner}};  // a membership from the store counts
  Harness h(snapshot, options);
  h.room("lobby", {"bob"});
  h.room("den", {"bob"});
  h.room("attic", {"cat"});

  // ann: one room from the store, one join; the third is refused, create or join.
  h.request("c", Join{"lobby", "ann"});
  h.request("c", Join{"den", "ann"});
  h.request("c", CreateRoom{"annex", "ann"});
  h.drain();
  auto batch = h.take_batch();
  ASSERT_TRUE(batch);
  h.confirm(batch->batch);
  auto replies = h.take_replies();
  ASSERT_EQ(replies.size(), 3u);  // refusals go out at once, the join once it is stored
  EXPECT_EQ(error_code(replies[0].second), errc::limit_reached);
  EXPECT_NE(std::get<ErrorReply>(replies[0].second.body).message.find("max_rooms_per_user"), std::string::npos);
  EXPECT_EQ(error_code(replies[1].second), errc::limit_reached);
  EXPECT_EQ(error_code(replies[2].second), errc::ok);
  // Joining a room she is in already is no new room.
  h.request("c", Join{"lobby", "ann"});
  h.drain();
  EXPECT_EQ(error_code(h.take_replies().at(0).second), errc::ok);

  // Leaving makes room for another.
  h.request("c", Leave{"old", "ann"});
  h.request("c", Join{"den", "ann"});
  h.drain();
  batch = h.take_batch();
  ASSERT_TRUE(batch);
  // That batch fails: the leave and the join are undone, and the count with them.
  h.confirm(batch->batch, Error{errc::unavailable, "disk on fire"});
  EXPECT_EQ(h.take_replies().size(), 2u);
  h.request("c", Join{"attic", "ann"});
  h.drain();
  EXPECT_EQ(error_code(h.take_replies().at(0).second), errc::limit_reached) << "still in old and lobby";
  // A room created in a failed batch gives its creator's count back.
  h.request("c", CreateRoom{"brand-new", "cat"});
  h.drain();
  batch = h.take_batch();
  ASSERT_TRUE(batch);
  h.confirm(batch->batch, Error{errc::unavailable, "disk on fire"});
  h.take_replies();
  h.request("c", Join{"lobby", "cat"});
  h.drain();
  batch = h.take_batch();
  ASSERT_TRUE(batch);
  h.confirm(batch->batch);
  EXPECT_EQ(error_code(h.take_replies().at(0).second), errc::ok) << "cat is in attic and lobby: two";
}

// ---- roles and private rooms ------------------------------------------------------

TEST(ChatRoles, TheCreatorOwnsTheRoomReadersReadButNeverPublishAndOnlyOwnersManage) {
  Harness h;
  EXPECT_TRUE(std::get<CreateRoomOk>(h.as("ann", CreateRoom{"team", "ann"}).body).created);
  EXPECT_EQ(error_code(h.as("bob", CreateRoom{"other", "ann"})), errc::forbidden) << "bob creating as ann";
  EXPECT_EQ(error_code(h.as("bob", Join{"team", "bob"})), errc::ok);
  EXPECT_EQ(error_code(h.as("ann", AddMember{"team", "rex", Role::reader})), errc::ok);
  auto members = std::get<MembersOk>(h.as("rex", Members{"team"}).body);
  EXPECT_EQ(members.members, (std::vector<std::string>{"ann", "bob", "rex"}));
  EXPECT_EQ(members.roles, (std::vector<Role>{Role::owner, Role::member, Role::reader}));

  // The reader reads, never publishes; the member publishes.
  EXPECT_EQ(error_code(h.as("rex", Publish{"team", "rex", "r1", "hi"})), errc::forbidden);
  EXPECT_EQ(error_code(h.as("bob", Publish{"team", "bob", "b1", "hi"})), errc::ok);
  EXPECT_EQ(error_code(h.as("bob", Publish{"team", "ann", "b2", "as ann"})), errc::forbidden);

  // Management is the owner's: a member is refused each op, and nothing changes.
  for (RequestBody op : std::vector<RequestBody>{AddMember{"team", "eve"}, RemoveMember{"team", "rex"},
                                                 SetRole{"team", "bob", Role::owner}, DeleteRoom{"team"}})
    EXPECT_EQ(error_code(h.as("bob", op)), errc::forbidden) << op_name(op);
  EXPECT_EQ(error_code(h.as("bob", Leave{"team", "rex"})), errc::forbidden) << "leaving for someone else";
  EXPECT_EQ(std::get<MembersOk>(h.as("ann", Members{"team"}).body).members.size(), 3u);

  // The owner promotes the reader, who may then publish; and removes bob.
  EXPECT_TRUE(std::get<SetRoleOk>(h.as("ann", SetRole{"team", "rex", Role::member}).body).changed);
  EXPECT_EQ(error_code(h.as("rex", Publish{"team", "rex", "r2", "now I may"})), errc::ok);
  EXPECT_TRUE(std::get<RemoveMemberOk>(h.as("ann", RemoveMember{"team", "bob"}).body).removed);
  EXPECT_EQ(error_code(h.as("bob", Publish{"team", "bob", "b3", "gone"})), errc::not_member);
}

TEST(ChatRoles, ARoomWithMembersKeepsAnOwner) {
  Harness h;
  h.as("ann", CreateRoom{"team", "ann"});
  h.as("bob", Join{"team", "bob"});
  EXPECT_EQ(error_code(h.as("ann", Leave{"team", "ann"})), errc::forbidden);
  EXPECT_EQ(error_code(h.as("ann", SetRole{"team", "ann", Role::member})), errc::forbidden);
  EXPECT_EQ(error_code(h.as(std::nullopt, RemoveMember{"team", "ann"})), errc::forbidden) << "services too";
  // Hand over, then leave.
  h.as("ann", SetRole{"team", "bob", Role::owner});
  EXPECT_TRUE(std::get<LeaveOk>(h.as("ann", Leave{"team", "ann"}).body).left);
  // The last member, owner or not, may leave.
  EXPECT_TRUE(std::get<LeaveOk>(h.as("bob", Leave{"team", "bob"}).body).left);
}

TEST(ChatRoles, APrivateRoomIsNoSuchRoomToNonMembersInEveryRequest) {
  Harness h;
  h.as("ann", CreateRoom{"staff", "ann", true});
  h.as("ann", CreateRoom{"lobby", "ann"});
  h.as("ann", Publish{"staff", "ann", "a1", "secret"});
  h.take_published();

  for (RequestBody op : std::vector<RequestBody>{
           Members{"staff"}, History{"staff", 10, {}, {}}, LastSeq{"staff"}, Join{"staff", "eve"},
           Publish{"staff", "eve", "e1", "x"}, AddMember{"staff", "eve"}, DeleteRoom{"staff"}, Leave{"staff", "eve"}}) {
    const Reply r = h.as("eve", op);
    EXPECT_EQ(error_code(r), errc::no_such_room) << op_name(op);
    EXPECT_EQ(std::get<ErrorReply>(r.body).message, "no room named 'staff'") << "the same as a room that is not there";
  }
  EXPECT_EQ(std::get<RoomsOk>(h.as("eve", ListRooms{}).body).rooms, std::vector<std::string>{"lobby"});
  EXPECT_EQ(std::get<RoomsOk>(h.as("ann", ListRooms{}).body).rooms, (std::vector<std::string>{"lobby", "staff"}));
  EXPECT_EQ(std::get<RoomsOk>(h.as(std::nullopt, ListRooms{}).body).rooms.size(), 2u) << "a service sees all";

  // Added by the owner, eve sees it and reads what was said before.
  EXPECT_TRUE(std::get<AddMemberOk>(h.as("ann", AddMember{"staff", "eve", Role::reader}).body).added);
  EXPECT_EQ(std::get<LastSeqOk>(h.as("eve", LastSeq{"staff"}).body).seq, 1u);
  EXPECT_EQ(std::get<RoomsOk>(h.as("eve", ListRooms{}).body).rooms.size(), 2u);
}

TEST(ChatRoles, PresenceIsToldOfEveryMembershipChangeWithThePrivateFlag) {
  ChatOptions options;
  options.presence_actor = "presence";
  Harness h({}, options);
  h.as("ann", CreateRoom{"staff", "ann", true});
  h.as("ann", AddMember{"staff", "bob"});
  h.as("ann", RemoveMember{"staff", "bob"});
  h.as("ann", AddMember{"staff", "cat"});
  h.as("ann", DeleteRoom{"staff"});
  std::vector<std::string> seen;
  for (const auto& e : h.fx.list())
    if (auto* s = std::get_if<Effects::Send>(&e); s && s->actor == "presence") {
      auto change = decode_membership(s->payload);
      ASSERT_TRUE(change);
      EXPECT_EQ(change->room, "staff");
      EXPECT_TRUE(change->private_room);
      seen.push_back((change->joined ? "+" : "-") + change->user);
    }
  EXPECT_EQ(seen, (std::vector<std::string>{"+ann", "+bob", "-bob", "+cat", "-ann", "-cat"}));
}

TEST(ChatRoles, ADeletedRoomIsGoneAndAFailedDeleteBringsItBackWhole) {
  Harness h;
  h.as("ann", CreateRoom{"team", "ann"});
  h.as("bob", Join{"team", "bob"});
  h.as("bob", Publish{"team", "bob", "b1", "one"});

  // The delete's batch fails: the room is back, members, roles and seqs as they were.
  h.request("c", DeleteRoom{"team"}, 0, "ann");
  h.drain();
  auto failed = h.take_batch();
  ASSERT_TRUE(failed);
  ASSERT_EQ(failed->records.size(), 1u);
  EXPECT_TRUE(std::holds_alternative<persistence::DeleteRoom>(failed->records[0]));
  h.confirm(failed->batch, {errc::unavailable, "disk on fire"});
  EXPECT_EQ(error_code(h.take_replies().at(0).second), errc::unavailable);
  auto members = std::get<MembersOk>(h.as("bob", Members{"team"}).body);
  EXPECT_EQ(members.roles, (std::vector<Role>{Role::owner, Role::member}));
  EXPECT_EQ(ack(h.as("bob", Publish{"team", "bob", "b2", "two"})).seq, 2u);

  EXPECT_TRUE(std::get<DeleteRoomOk>(h.as("ann", DeleteRoom{"team"}).body).deleted);
  EXPECT_EQ(error_code(h.as("bob", Publish{"team", "bob", "b3", "three"})), errc::no_such_room);
  EXPECT_EQ(error_code(h.as("bob", History{"team", 10, {}, {}})), errc::no_such_room);
  // Made again, the name is a new room: bob is not in it, and its seqs start at 1.
  h.as("cat", CreateRoom{"team", "cat"});
  EXPECT_EQ(error_code(h.as("bob", Publish{"team", "bob", "b4", "four"})), errc::not_member);
  EXPECT_EQ(ack(h.as("cat", Publish{"team", "cat", "c1", "first"})).seq, 1u);
}

TEST(ChatRoles, CreatingARoomUnderAPrivateRoomsNameIsRefusedWithoutShowingTheRoom) {
  Harness h;
  h.as("ann", CreateRoom{"staff", "ann", true});
  h.as("ann", CreateRoom{"lobby", "ann"});
  const Reply taken = h.as("eve", CreateRoom{"staff", "eve"});
  EXPECT_EQ(error_code(taken), errc::name_unavailable);
  EXPECT_EQ(std::get<ErrorReply>(taken.body).message, "the name 'staff' cannot be used for a new room");
  EXPECT_FALSE(std::get<CreateRoomOk>(h.as("eve", CreateRoom{"lobby", "eve"}).body).created) << "a public room is seen";
  EXPECT_FALSE(std::get<CreateRoomOk>(h.as("ann", CreateRoom{"staff", "ann"}).body).created) << "so is one's own";
  EXPECT_FALSE(std::get<CreateRoomOk>(h.as(std::nullopt, CreateRoom{"staff", "svc"}).body).created) << "and by the node";
  const auto members = std::get<MembersOk>(h.as("ann", Members{"staff"}).body);
  EXPECT_EQ(members.members, std::vector<std::string>{"ann"}) << "nothing changed";
}

TEST(ChatRoles, AnInvitationDoesNotReadmitAUserAnOwnerRemovedUntilAnOwnerAddsThemBack) {
  Harness h;
  h.as("ann", CreateRoom{"staff", "ann", true});
  auto invited = [](const std::string& user) { return Join{"staff", user, true}; };
  EXPECT_TRUE(std::get<JoinOk>(h.as(std::nullopt, invited("bob")).body).joined);
  EXPECT_TRUE(std::get<RemoveMemberOk>(h.as("ann", RemoveMember{"staff", "bob"}).body).removed);
  EXPECT_EQ(error_code(h.as(std::nullopt, invited("bob"))), errc::no_such_room);
  EXPECT_TRUE(std::get<JoinOk>(h.as(std::nullopt, invited("cat")).body).joined) << "others' invitations still work";
  EXPECT_TRUE(std::get<JoinOk>(h.as(std::nullopt, Join{"staff", "bob"}).body).joined) << "the node itself may";
  // Leaving by oneself is not a removal.
  EXPECT_TRUE(std::get<LeaveOk>(h.as("bob", Leave{"staff", "bob"}).body).left);
  EXPECT_TRUE(std::get<JoinOk>(h.as(std::nullopt, invited("bob")).body).joined);

  // Removed in a batch that fails: bob is a member again, as if never removed.
  h.request("c", RemoveMember{"staff", "bob"}, 0, "ann");
  h.drain();
  auto failed = h.take_batch();
  ASSERT_TRUE(failed);
  ASSERT_EQ(failed->records.size(), 1u);
  const auto& record = std::get<persistence::RemoveMember>(failed->records[0]);
  EXPECT_TRUE(record.remember) << "a removal by an owner is stored as one";
  h.confirm(failed->batch, {errc::unavailable, "disk on fire"});
  h.take_replies();
  EXPECT_TRUE(std::get<LeaveOk>(h.as("bob", Leave{"staff", "bob"}).body).left);
  EXPECT_TRUE(std::get<JoinOk>(h.as(std::nullopt, invited("bob")).body).joined);

  // An owner adds a removed user back: the invitation works again after that.
  h.as("ann", RemoveMember{"staff", "bob"});
  EXPECT_TRUE(std::get<AddMemberOk>(h.as("ann", AddMember{"staff", "bob", Role::reader}).body).added);
  EXPECT_TRUE(std::get<LeaveOk>(h.as("bob", Leave{"staff", "bob"}).body).left);
  EXPECT_TRUE(std::get<JoinOk>(h.as(std::nullopt, invited("bob")).body).joined);
}

TEST(ChatRoles, ARemovalRememberedInTheStoreHoldsAfterARestart) {
  persistence::Snapshot snapshot;
  auto& room = snapshot.rooms["staff"];
  room.creator = "ann";
  room.private_room = true;
  room.members = {{"ann", Role::owner}};
  room.removed = {"bob"};
  Harness h(snapshot);
  EXPECT_EQ(error_code(h.as(std::nullopt, Join{"staff", "bob", true})), errc::no_such_room);
  EXPECT_TRUE(std::get<JoinOk>(h.as(std::nullopt, Join{"staff", "cat", true}).body).joined);
}

TEST(ChatRoles, ABannedUserIsOutAtOnceAndStaysOutUntilUnbannedAndAFailedBanChangesNothing) {
  ChatOptions options;
  options.presence_actor = "presence";
  Harness h({}, options);
  h.as("ann", CreateRoom{"team", "ann"});
  h.as("bob", Join{"team", "bob"});
  EXPECT_EQ(error_code(h.as("bob", Ban{"team", "ann"})), errc::forbidden) << "a member may not ban";
  EXPECT_EQ(error_code(h.as("ann", Ban{"nowhere", "bob"})), errc::no_such_room);

  // Banned in a batch that fails: bob is a member as before, and not banned.
  h.request("c", Ban{"team", "bob"}, 0, "ann");
  h.drain();
  auto failed = h.take_batch();
  ASSERT_TRUE(failed);
  ASSERT_EQ(failed->records.size(), 1u);
  EXPECT_TRUE(std::get<persistence::RemoveMember>(failed->records[0]).ban) << "stored as a ban";
  h.confirm(failed->batch, {errc::unavailable, "disk on fire"});
  EXPECT_EQ(error_code(h.take_replies().at(0).second), errc::unavailable);
  EXPECT_EQ(error_code(h.as("bob", Publish{"team", "bob", "b1", "still here"})), errc::ok);

  EXPECT_TRUE(std::get<BanOk>(h.as("ann", Ban{"team", "bob"}).body).banned);
  EXPECT_FALSE(std::get<BanOk>(h.as("ann", Ban{"team", "bob"}).body).banned);
  EXPECT_EQ(error_code(h.as("bob", Publish{"team", "bob", "b2", "gone"})), errc::not_member);
  const Reply join = h.as("bob", Join{"team", "bob"});
  EXPECT_EQ(error_code(join), errc::forbidden);
  EXPECT_NE(std::get<ErrorReply>(join.body).message.find("banned"), std::string::npos);
  EXPECT_EQ(error_code(h.as(std::nullopt, Join{"team", "bob", true})), errc::forbidden) << "invited";
  EXPECT_EQ(error_code(h.as("ann", AddMember{"team", "bob"})), errc::forbidden);
  EXPECT_EQ(std::get<MembersOk>(h.as("ann", Members{"team"}).body).members, std::vector<std::string>{"ann"});

  EXPECT_TRUE(std::get<UnbanOk>(h.as("ann", Unban{"team", "bob"}).body).unbanned);
  EXPECT_FALSE(std::get<UnbanOk>(h.as("ann", Unban{"team", "bob"}).body).unbanned);
  EXPECT_EQ(std::get<MembersOk>(h.as("ann", Members{"team"}).body).members, std::vector<std::string>{"ann"})
      << "an unban does not make a member";
  EXPECT_TRUE(std::get<JoinOk>(h.as("bob", Join{"team", "bob"}).body).joined);

  std::vector<std::string> seen;
  for (const auto& e : h.fx.list())
    if (auto* s = std::get_if<Effects::Send>(&e); s && s->actor == "presence") {
      auto change = decode_membership(s->payload);
      ASSERT_TRUE(change);
      seen.push_back((change->joined ? "+" : "-") + change->user);
    }
  EXPECT_EQ(seen, (std::vector<std::string>{"+ann", "+bob", "-bob", "+bob"})) << "the ban is a leave";
}

TEST(ChatRoles, ABanRememberedInTheStoreHoldsAfterARestart) {
  persistence::Snapshot snapshot;
  auto& room = snapshot.rooms["staff"];
  room.creator = "ann";
  room.members = {{"ann", Role::owner}};
  room.banned = {"bob"};
  Harness h(snapshot);
  EXPECT_EQ(error_code(h.as("bob", Join{"staff", "bob"})), errc::forbidden);
  EXPECT_EQ(error_code(h.as(std::nullopt, Join{"staff", "bob", true})), errc::forbidden);
  EXPECT_TRUE(std::get<JoinOk>(h.as("cat", Join{"staff", "cat"}).body).joined);
}

// ---- publish_batch --------------------------------------------------------------

namespace {

PublishBatch batch_of(const std::string& room, const std::string& user, std::vector<std::string> cmids) {
  PublishBatch b{room, user, {}};
  for (auto& c : cmids) b.items.push_back({c, "body " + c});
  return b;
}
const PublishBatchOk& results(const Reply& r) { return std::get<PublishBatchOk>(r.body); }
std::vector<std::uint64_t> seqs_of(const PublishBatchOk& ok) {
  std::vector<std::uint64_t> out;
  for (const auto& r : ok.results) out.push_back(r.seq);
  return out;
}

}  // namespace

TEST(ChatBatch, EachItemGetsItsOwnSeqAndOneReplyAnswersThemOnlyOnceDurable) {
  Harness h;
  h.room("general", {"ann"});
  h.request("c1", Publish{"general", "ann", "single", "first"});
  h.request("c1", batch_of("general", "ann", {"a", "b", "c"}));
  h.drain();
  auto batch = h.take_batch();
  ASSERT_TRUE(batch);
  EXPECT_TRUE(h.take_replies().empty()) << "nothing is answered before it is durable";
  EXPECT_TRUE(h.take_published().empty());
  ASSERT_EQ(batch->records.size(), 4u) << "one record per message, in one group commit";
  for (std::uint64_t i = 0; i < 4; ++i) EXPECT_EQ(std::get<persistence::StoredMessage>(batch->records[i]).seq, i + 1);
  EXPECT_EQ(std::get<persistence::StoredMessage>(batch->records[3]).body, "body c");

  h.confirm(batch->batch);
  auto published = h.take_published();
  ASSERT_EQ(published.size(), 4u);
  for (std::uint64_t i = 0; i < 4; ++i) EXPECT_EQ(published[i].seq, i + 1);
  EXPECT_EQ(published[2].client_msg_id, "b");
  auto replies = h.take_replies();
  ASSERT_EQ(replies.size(), 2u) << "one reply per request frame";
  EXPECT_EQ(ack(replies[0].second).seq, 1u);
  const auto& ok = results(replies[1].second);
  EXPECT_EQ(ok.room, "general");
  EXPECT_EQ(seqs_of(ok), (std::vector<std::uint64_t>{2, 3, 4}));
  for (const auto& r : ok.results) {
    EXPECT_EQ(r.ts_ms, h.now.wall_ms);
    EXPECT_FALSE(r.duplicate);
    EXPECT_EQ(r.code, errc::ok);
  }
}

TEST(ChatBatch, RetriedItemsGetTheOriginalSeqsAndAreStoredOnce) {
  Harness h;
  h.room("general", {"ann"});
  const Reply first = h.as(std::nullopt, batch_of("general", "ann", {"a", "b"}));
  EXPECT_EQ(seqs_of(results(first)), (std::vector<std::uint64_t>{1, 2}));
  EXPECT_EQ(h.take_published().size(), 2u);
  // The same frame again, and one with old and new items and a cmid twice.
  h.request("c", batch_of("general", "ann", {"a", "b"}));
  h.request("c", batch_of("general", "ann", {"b", "c", "c", "d"}));
  h.drain();
  auto batch = h.take_batch();
  ASSERT_TRUE(batch);
  ASSERT_EQ(batch->records.size(), 2u) << "only c and d are new";
  h.confirm(batch->batch);
  auto replies = h.take_replies();
  ASSERT_EQ(replies.size(), 2u);
  const auto& again = results(replies[0].second);
  EXPECT_EQ(seqs_of(again), (std::vector<std::uint64_t>{1, 2}));
  EXPECT_TRUE(again.results[0].duplicate && again.results[1].duplicate);
  const auto& mixed = results(replies[1].second);
  EXPECT_EQ(seqs_of(mixed), (std::vector<std::uint64_t>{2, 3, 3, 4}));
  EXPECT_EQ(std::vector<bool>({mixed.results[0].duplicate, mixed.results[1].duplicate, mixed.results[2].duplicate,
                               mixed.results[3].duplicate}),
            (std::vector<bool>{true, false, true, false}));
  EXPECT_EQ(h.take_published().size(), 2u);
  // A single publish retrying an item of a batch gets the item's seq.
  EXPECT_EQ(ack(h.as(std::nullopt, Publish{"general", "ann", "c", "body c"})).seq, 3u);
  EXPECT_TRUE(ack(h.as(std::nullopt, Publish{"general", "ann", "c", "body c"})).duplicate);
}

TEST(ChatBatch, ASingleRetryOfAnItemInFlightIsAnsweredWhenTheBatchIsDurable) {
  Harness h;
  h.room("general", {"ann"});
  h.request("c1", batch_of("general", "ann", {"a", "b"}));
  h.drain();
  auto batch = h.take_batch();
  ASSERT_TRUE(batch);
  h.request("c2", Publish{"general", "ann", "b", "body b"});  // the retry, while in flight
  h.drain();
  EXPECT_FALSE(h.take_batch()) << "nothing new to store";
  h.confirm(batch->batch);
  auto replies = h.take_replies();
  ASSERT_EQ(replies.size(), 2u);
  std::map<std::string, Reply> by_peer;
  for (auto& [peer, reply] : replies) by_peer[peer] = reply;
  EXPECT_EQ(ack(by_peer["c2"]).seq, 2u);
  EXPECT_TRUE(ack(by_peer["c2"]).duplicate);
  EXPECT_EQ(seqs_of(results(by_peer["c1"])), (std::vector<std::uint64_t>{1, 2}));
}

TEST(ChatBatch, AFailedBatchAnswersTheWholeFrameAndARetryIsStoredOnceWithGaplessSeqs) {
  Harness h;
  h.room("general", {"ann"});
  h.request("c1", batch_of("general", "ann", {"a", "b", "c"}));
  h.drain();
  auto failed = h.take_batch();
  ASSERT_TRUE(failed);
  h.confirm(failed->batch, {errc::unavailable, "disk on fire"});
  auto replies = h.take_replies();
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(error_code(replies[0].second), errc::unavailable);
  EXPECT_TRUE(h.take_published().empty());
  // The retry (same cmids) is stored now, from seq 1.
  const Reply retried = h.as(std::nullopt, batch_of("general", "ann", {"a", "b", "c"}));
  EXPECT_EQ(seqs_of(results(retried)), (std::vector<std::uint64_t>{1, 2, 3}));
  for (const auto& r : results(retried).results) EXPECT_FALSE(r.duplicate);
}

TEST(ChatBatch, TheRoomsRulesRefuseTheWholeFrameAndStoreNothing) {
  Harness h;
  h.room("general", {"ann"});
  h.as("ann", AddMember{"general", "rita", Role::reader});
  struct Case {
    std::optional<std::string> as;
    PublishBatch batch;
    errc code;
  };
  for (const auto& c : std::vector<Case>{
           {std::nullopt, batch_of("nowhere", "ann", {"x"}), errc::no_such_room},
           {std::nullopt, batch_of("general", "eve", {"x"}), errc::not_member},
           {std::nullopt, batch_of("general", "rita", {"x"}), errc::forbidden},
           {"eve", batch_of("general", "ann", {"x"}), errc::forbidden},
       }) {
    EXPECT_EQ(error_code(h.as(c.as, c.batch)), c.code) << c.batch.room << " " << c.batch.user;
    EXPECT_TRUE(h.take_published().empty());
  }
  // None of the refused cmids is remembered: each is stored when it may be.
  EXPECT_EQ(seqs_of(results(h.as("ann", batch_of("general", "ann", {"x"})))), std::vector<std::uint64_t>{1});
}

TEST(Chat, ReadsAreTakenAheadOfPublishesUnlessAPublishHookKeepsACallersOrder) {
  Harness h;
  auto inbound = [](const std::string& frame) {
    Inbound in;
    in.via = Inbound::Via::mailbox;
    in.sender = "client";
    in.frames.push_back(frame);
    return in;
  };
  const std::string history = encode_request({1, History{"general", 10, std::nullopt, std::nullopt}});
  const std::string last = encode_request({2, LastSeq{"general"}});
  const std::string publish = encode_request({3, Publish{"general", "ann", "c1", "history last_seq"}});
  const std::string members = encode_request({4, Members{"history"}});
  EXPECT_TRUE(h.chat.ahead(inbound(history)));
  EXPECT_TRUE(h.chat.ahead(inbound(last)));
  EXPECT_FALSE(h.chat.ahead(inbound(publish))) << "a body that names a read is no read";
  EXPECT_FALSE(h.chat.ahead(inbound(members)));
  EXPECT_FALSE(h.chat.ahead(inbound("not msgpack history")));

  ChatOptions hooked;
  hooked.hook = PublishHook{"moderator"};
  Harness with_hook({}, hooked);
  EXPECT_FALSE(with_hook.chat.ahead(inbound(history)));
}

// Retention's pacing (actors/chat_retention.cpp): while clients write, a trim step waits
// after the one before; but a room that fills faster than one step at a time can trim
// gets two steps queued at once, so it stays near its bound.
TEST(Chat, ARoomFillingFasterThanOneTrimStepAtATimeGetsTwoStepsAtOnce) {
  constexpr std::uint64_t kRetentionTimer = 5, kTrimTimer = 6;  // Chat's timer ids
  Harness h;
  h.room("busy", {"ann"});
  std::uint64_t cmid = 0;
  auto trims = [](const store::Append& batch) {
    std::vector<std::uint64_t> to;
    for (const auto& r : batch.records)
      if (auto* t = std::get_if<persistence::TrimRoom>(&r)) to.push_back(t->first_seq);
    return to;
  };
  // Publishes `n` messages, each batch stored at once; the trim steps among them are
  // stored `took` after they were queued. Returns the trim steps seen, in order.
  auto publish = [&](int n, SteadyClock::duration took = {}) {
    for (int i = 0; i < n; ++i) h.request("c", Publish{"busy", "ann", "m" + std::to_string(++cmid), "x"});
    h.drain();
    std::vector<std::uint64_t> seen;
    while (auto b = h.take_batch()) {
      auto t = trims(*b);
      seen.insert(seen.end(), t.begin(), t.end());
      if (!t.empty()) h.now.steady += took;
      h.confirm(b->batch);
    }
    h.take_replies();
    return seen;
  };
  publish(3000);
  EXPECT_TRUE(std::holds_alternative<SetRetentionOk>(h.as("ann", SetRetention{"busy", {}, 10, {}}).body));

  // The once-a-second look: one step of 1000, stored 10 ms after it was queued.
  h.chat.on_timer(kRetentionTimer, h.now, h.fx);
  EXPECT_EQ(publish(1, std::chrono::milliseconds(10)), std::vector<std::uint64_t>{1001});
  // The next waits 19 x 10 ms while clients write, and the room gains 4000 messages
  // meanwhile (about 20k a second: 500 in some 27 ms).
  h.now.steady += std::chrono::milliseconds(100);
  h.chat.on_timer(kTrimTimer, h.now, h.fx);
  EXPECT_TRUE(publish(4000).empty()) << "paced: not yet";
  h.now.steady += std::chrono::milliseconds(90);
  h.chat.on_timer(kTrimTimer, h.now, h.fx);
  // This step takes 30 ms from queued to stored: longer than the room takes to gain 500.
  EXPECT_EQ(publish(1, std::chrono::milliseconds(30)), std::vector<std::uint64_t>{2001});
  // So the next goes at once, as two steps queued together.
  h.chat.on_timer(kTrimTimer, h.now, h.fx);
  EXPECT_EQ(publish(1, std::chrono::milliseconds(1)), (std::vector<std::uint64_t>{3001, 4001}));
}

// How fast a room fills is measured over a window of at least 200 ms, not between two
// steps: a pipelined publisher's writes land in bursts, and a short gap between two
// must not pass for a room that stopped filling (the pause would grow to 19 times the
// step's time, and the room past its bound). A step that takes several times as long
// as the room takes to gain half a step gets as many more steps queued with the next.
TEST(Chat, TrimPacingMeasuresHowFastARoomFillsOverAWindowAndQueuesAsManyStepsAsItFallsBehind) {
  constexpr std::uint64_t kRetentionTimer = 5, kTrimTimer = 6;  // Chat's timer ids
  using std::chrono::milliseconds;
  Harness h;
  h.room("busy", {"ann"});
  std::uint64_t cmid = 0;
  auto publish = [&](int n, SteadyClock::duration took = {}) {
    for (int i = 0; i < n; ++i) h.request("c", Publish{"busy", "ann", "m" + std::to_string(++cmid), "x"});
    h.drain();
    std::vector<std::uint64_t> seen;
    while (auto b = h.take_batch()) {
      bool trimmed = false;
      for (const auto& r : b->records)
        if (auto* t = std::get_if<persistence::TrimRoom>(&r)) seen.push_back(t->first_seq), trimmed = true;
      if (trimmed) h.now.steady += took;
      h.confirm(b->batch);
    }
    h.take_replies();
    return seen;
  };
  auto next_trim = [&](SteadyClock::duration after) {
    h.now.steady += after;
    h.chat.on_timer(kTrimTimer, h.now, h.fx);
  };
  publish(3000);
  EXPECT_TRUE(std::holds_alternative<SetRetentionOk>(h.as("ann", SetRetention{"busy", {}, 10, {}}).body));
  h.chat.on_timer(kRetentionTimer, h.now, h.fx);
  EXPECT_EQ(publish(1, milliseconds(10)), std::vector<std::uint64_t>{1001});  // the window starts
  EXPECT_TRUE(publish(4000).empty()) << "paced: 19 x 10 ms";
  next_trim(milliseconds(190));
  // 210 ms after the window began, 4001 messages more: half a step in about 26 ms. This
  // step took 20 ms, so the next waits the 6 ms left of that.
  EXPECT_EQ(publish(1, milliseconds(20)), std::vector<std::uint64_t>{2001});
  next_trim(milliseconds(7));
  // This one took 2 ms, and the room gained one message in the 9 ms since: the rate is
  // still the window's, so the next waits 24 ms, not 19 x 2 = 38 ms.
  EXPECT_EQ(publish(1, milliseconds(2)), std::vector<std::uint64_t>{3001});
  next_trim(milliseconds(20));
  EXPECT_TRUE(publish(4000).empty()) << "paced: 24 ms";
  next_trim(milliseconds(5));
  // At 25 ms it goes. It takes 80 ms: three half-steps' time over the room's...
  EXPECT_EQ(publish(1, milliseconds(80)), std::vector<std::uint64_t>{4001});
  // ... so the next four go at once.
  next_trim(milliseconds(0));
  EXPECT_EQ(publish(1, milliseconds(1)), (std::vector<std::uint64_t>{5001, 6001, 7001, 8001}));
}
