// The persistence actor as a pure handler over a real LMDB store in a temp directory.
#include <gtest/gtest.h>

#include <filesystem>

#include "node_process.hpp"
#include "switchboard/actors/persistence.hpp"
#include "switchboard/transport/codec.hpp"

using namespace switchboard;
using namespace switchboard::actors;
using switchboard::testing::TempDir;

namespace {

struct Harness {
  /// `copies`: the store in DIR/store, copies in DIR/copies, rooms "a*" in shard s1.
  explicit Harness(bool copies = false) {
    persistence::StoreOptions o;
    o.dir = copies ? dir.path() / "store" : dir.path();
    o.durability = persistence::Durability::nosync;
    auto store = persistence::HistoryStore::open(o);
    EXPECT_TRUE(store);
    PersistenceOptions options;
    if (copies) {
      options.copies_dir = dir.path() / "copies";
      options.in_shard = [](const std::string& shard, std::string_view room) {
        return shard == "s1" && room.substr(0, 1) == "a";
      };
    }
    actor = std::make_unique<Persistence>(std::move(*store), options);
  }
  /// The one CopyDone among the effects so far (through its codec, as chat reads it).
  std::optional<store::CopyDone> copy_done() {
    std::optional<store::CopyDone> done;
    for (const auto& e : fx.list())
      if (auto* r = std::get_if<Effects::Reply>(&e))
        if (auto m = store::receive(r->payload); m && std::holds_alternative<store::CopyDone>(*m))
          done = std::get<store::CopyDone>(std::move(*m));
    fx.clear();
    return done;
  }
  void send(const std::string& sender, const store::Message& m) {
    frames.push_back(store::encode(m));
    Inbound in{Inbound::Via::mailbox, sender, {frames.back()}};
    actor->on_message(in, Now{}, fx);
  }
  /// The Appended answers of the effects so far, by batch id.
  std::map<std::uint64_t, Error> answers() {
    std::map<std::uint64_t, Error> out;
    for (const auto& e : fx.list())
      if (auto* r = std::get_if<Effects::Reply>(&e)) {
        auto m = store::receive(r->payload);
        if (auto* a = std::get_if<store::Appended>(&*m)) out[a->batch] = a->error;
      }
    fx.clear();
    return out;
  }
  transport::HistoryOk history(const std::string& room) {
    send("chat", store::Read{99, 1, room, store::Read::Mode::after, 0, 100});
    for (const auto& e : fx.list())
      if (auto* r = std::get_if<Effects::Reply>(&e)) {
        auto page = std::get<store::Page>(*store::receive(r->payload));
        fx.clear();
        auto reply = transport::decode_reply(page.reply_frame, transport::Limits{});
        return std::get<transport::HistoryOk>(reply->body);
      }
    return {};
  }

  TempDir dir;
  std::unique_ptr<Persistence> actor;
  Effects fx;
  std::deque<std::string> frames;
};

persistence::StoredMessage msg(const std::string& room, std::uint64_t seq) {
  return {room, seq, "ann", 1000 + seq, "body " + std::to_string(seq), "c" + std::to_string(seq)};
}

}  // namespace

TEST(Persistence, BatchesThatWaitedTogetherAreOneGroupCommit) {
  Harness h;
  h.send("chat-a", store::Append{1, 0, {persistence::CreateRoom{"a", "ann", 1}, msg("a", 1)}});
  h.send("chat-b", store::Append{1, 0, {persistence::CreateRoom{"b", "bob", 1}, msg("b", 1)}});
  EXPECT_TRUE(h.answers().empty()) << "nothing is answered before the commit";
  h.actor->on_drained(Now{}, h.fx);
  auto answers = h.answers();
  ASSERT_EQ(answers.size(), 1u);  // both senders used batch id 1; both answered ok
  EXPECT_EQ(answers[1].code, errc::ok);
  EXPECT_EQ(h.actor->stats().commits, 1u);
  EXPECT_EQ(h.actor->stats().records, 4u);
}

TEST(Persistence, ABatchSentAfterOneThatFailedIsRefusedToo) {
  Harness h;
  h.send("chat", store::Append{1, 0, {persistence::CreateRoom{"r", "ann", 1}, msg("r", 1)}});
  h.actor->on_drained(Now{}, h.fx);
  ASSERT_EQ(h.answers()[1].code, errc::ok);

  h.send("chat", store::Append{2, 1, {msg("r", 5)}});  // breaks the seq invariant
  h.send("chat", store::Append{3, 2, {msg("r", 2)}});  // valid alone, but follows batch 2
  h.actor->on_drained(Now{}, h.fx);
  auto answers = h.answers();
  EXPECT_EQ(answers.at(2).code, errc::internal);
  EXPECT_EQ(answers.at(3).code, errc::unavailable);
  EXPECT_NE(answers.at(3).message.find("batch 2"), std::string::npos) << answers.at(3).message;

  h.send("chat", store::Append{4, 0, {msg("r", 2)}});  // chat rolled back and starts afresh
  h.actor->on_drained(Now{}, h.fx);
  EXPECT_EQ(h.answers().at(4).code, errc::ok);
  auto stored = h.history("r");
  ASSERT_EQ(stored.messages.size(), 2u);
  EXPECT_EQ(stored.messages[1].seq, 2u);
}

TEST(Persistence, OneSendersBrokenBatchDoesNotFailAnothers) {
  Harness h;
  h.send("chat-a", store::Append{1, 0, {persistence::CreateRoom{"a", "ann", 1}, msg("a", 7)}});  // broken
  h.send("chat-b", store::Append{1, 0, {persistence::CreateRoom{"b", "bob", 1}, msg("b", 1)}});
  h.actor->on_drained(Now{}, h.fx);
  std::map<std::string, errc> by_sender;
  for (const auto& e : h.fx.list())
    if (auto* r = std::get_if<Effects::Reply>(&e))
      by_sender[r->to] = std::get<store::Appended>(*store::receive(r->payload)).error.code;
  h.fx.clear();
  EXPECT_EQ(by_sender["chat-a"], errc::internal);
  EXPECT_EQ(by_sender["chat-b"], errc::ok);
  EXPECT_EQ(h.history("b").messages.size(), 1u);
}

TEST(Persistence, ACopyOfTheStoreIsMadeReadInChunksWrittenElsewhereAndInstalled) {
  using Kind = store::CopyOp::Kind;
  Harness primary(true), replica(true);
  primary.send("chat", store::Append{1, 0, {persistence::CreateRoom{"a1", "ann", 1}, msg("a1", 1), msg("a1", 2),
                                            persistence::CreateRoom{"b1", "bob", 1}, msg("b1", 1),
                                            persistence::LogEntry{"s1", 3, 1, "e"}}});
  primary.actor->on_drained(Now{}, primary.fx);
  ASSERT_EQ(primary.answers()[1].code, errc::ok);

  primary.send("chat", store::CopyOp{Kind::make, 10, 10});
  auto made = primary.copy_done();
  ASSERT_TRUE(made);
  ASSERT_EQ(made->error.code, errc::ok) << made->error.message;
  EXPECT_EQ(made->corr, 10u);
  ASSERT_GT(made->size, 0u);
  // Read in chunks of 4 KiB, written at the replica in the same order.
  std::uint64_t offset = 0;
  for (std::uint64_t corr = 11; offset < made->size; ++corr) {
    primary.send("chat", store::CopyOp{Kind::read, corr, 10, {}, offset, 4096});
    auto chunk = primary.copy_done();
    ASSERT_TRUE(chunk);
    ASSERT_EQ(chunk->error.code, errc::ok) << chunk->error.message;
    ASSERT_EQ(chunk->data.size(), std::min<std::uint64_t>(4096, made->size - offset));
    replica.send("chat", store::CopyOp{Kind::write, corr, 10, "s1", offset, 0, chunk->data});
    auto written = replica.copy_done();
    ASSERT_TRUE(written);
    ASSERT_EQ(written->error.code, errc::ok) << written->error.message;
    EXPECT_EQ(written->size, chunk->data.size());
    offset += chunk->data.size();
  }
  primary.send("chat", store::CopyOp{Kind::read, 50, 10, {}, made->size, 4096});
  EXPECT_NE(primary.copy_done()->error.code, errc::ok) << "nothing past the end";
  primary.send("chat", store::CopyOp{Kind::drop, 0, 10});
  EXPECT_FALSE(primary.copy_done()) << "a drop is not answered";
  EXPECT_FALSE(std::filesystem::exists(primary.dir.path() / "copies" / "out-10"));

  replica.send("chat", store::CopyOp{Kind::install, 60, 10, "s1", 0});
  auto installed = replica.copy_done();
  ASSERT_TRUE(installed);
  ASSERT_EQ(installed->error.code, errc::ok) << installed->error.message;
  EXPECT_EQ(installed->position, (persistence::LogPosition{3, 1}));
  EXPECT_EQ(installed->terms, (std::vector<persistence::TermStart>{{3, 1}}));
  EXPECT_EQ(installed->size, 2u) << "a1's two messages";
  std::size_t markers = 0;
  for (const auto& r : installed->view) markers += std::holds_alternative<persistence::MarkRead>(r) ? 1 : 0;
  EXPECT_EQ(installed->view.size() - markers, 3u) << "a1's creation and its two messages";
  EXPECT_GE(markers, 1u) << "its senders' read markers";
  auto history = replica.history("a1");
  ASSERT_EQ(history.messages.size(), 2u);
  EXPECT_EQ(history.messages[1].body, "body 2");
  replica.send("chat", store::Read{98, 1, "b1", store::Read::Mode::after, 0, 10});
  ASSERT_EQ(replica.fx.list().size(), 1u);
  auto page = std::get<store::Page>(*store::receive(std::get<Effects::Reply>(replica.fx.list()[0]).payload));
  replica.fx.clear();
  auto reply = transport::decode_reply(page.reply_frame, transport::Limits{});
  ASSERT_TRUE(std::holds_alternative<transport::ErrorReply>(reply->body)) << "b1 is not in shard s1";
  EXPECT_EQ(std::get<transport::ErrorReply>(reply->body).code, errc::no_such_room);
  EXPECT_TRUE(std::filesystem::is_empty(replica.dir.path() / "copies")) << "the copy is deleted once installed";

  // An install with no copy there fails and changes nothing.
  replica.send("chat", store::CopyOp{Kind::install, 61, 10, "s1", 0});
  EXPECT_EQ(replica.copy_done()->error.code, errc::unavailable);
  EXPECT_EQ(replica.history("a1").messages.size(), 2u);
}
