// The persistence actor as a pure handler over a real LMDB store in a temp directory.
#include <gtest/gtest.h>

#include "node_process.hpp"
#include "switchboard/actors/persistence.hpp"
#include "switchboard/transport/codec.hpp"

using namespace switchboard;
using namespace switchboard::actors;
using switchboard::testing::TempDir;

namespace {

struct Harness {
  Harness() {
    persistence::StoreOptions o;
    o.dir = dir.path();
    o.durability = persistence::Durability::nosync;
    auto store = persistence::HistoryStore::open(o);
    EXPECT_TRUE(store);
    actor = std::make_unique<Persistence>(std::move(*store), PersistenceOptions{});
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
        auto m = store::decode(r->payload);
        if (auto* a = std::get_if<store::Appended>(&*m)) out[a->batch] = a->error;
      }
    fx.clear();
    return out;
  }
  transport::HistoryOk history(const std::string& room) {
    send("chat", store::Read{99, 1, room, store::Read::Mode::after, 0, 100});
    for (const auto& e : fx.list())
      if (auto* r = std::get_if<Effects::Reply>(&e)) {
        auto page = std::get<store::Page>(*store::decode(r->payload));
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
      by_sender[r->to] = std::get<store::Appended>(*store::decode(r->payload)).error.code;
  h.fx.clear();
  EXPECT_EQ(by_sender["chat-a"], errc::internal);
  EXPECT_EQ(by_sender["chat-b"], errc::ok);
  EXPECT_EQ(h.history("b").messages.size(), 1u);
}
