// Chat's group commit (actors/chat/batch_pipeline.hpp) on its own: batches formed in
// arrival order within their limits, at most so many at persistence, answered in order,
// a failure taking back every batch in flight, and replicas waited for in order.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "switchboard/actors/chat/batch_pipeline.hpp"

namespace {

using switchboard::actors::BatchPipeline;
using switchboard::actors::SteadyClock;

/// A request: its name, the records it writes, its bytes, and whether it is refused.
struct Op {
  std::string name;
  std::size_t records = 1, bytes = 10;
  bool refused = false;
};
struct Extra {
  std::vector<std::string> applied;  ///< what admit() applied to this batch, in order
};
using Pipeline = BatchPipeline<Op, Extra>;

Pipeline::Limits limits(std::size_t records, std::size_t bytes, std::size_t in_flight, std::size_t awaiting = 256) {
  return {records, bytes, in_flight, awaiting};
}

/// Forms a batch; returns the names of the ops in it (refused ones are listed in `refused`).
Pipeline::Batch form(Pipeline& p, std::vector<std::string>* refused = nullptr) {
  return p.form(
      SteadyClock::now(), [](const Op& op) { return Pipeline::Weight{op.records, op.bytes}; },
      [&](Op& op, Pipeline::Batch& batch) -> std::optional<std::size_t> {
        if (op.refused) {
          if (refused) refused->push_back(op.name);
          return std::nullopt;
        }
        batch.applied.push_back(op.name);
        return op.records;
      });
}

std::vector<std::string> names(const Pipeline::Batch& batch) {
  std::vector<std::string> out;
  for (const auto& op : batch.ops) out.push_back(op.name);
  return out;
}

}  // namespace

TEST(BatchPipeline, ABatchTakesRequestsInArrivalOrderWithinItsRecordLimit) {
  Pipeline p(limits(5, 1 << 20, 2));
  EXPECT_FALSE(p.may_form());
  for (const char* name : {"a", "b", "c"}) p.enqueue({name, 2});
  p.enqueue({"d", 1});
  ASSERT_TRUE(p.may_form());
  auto first = form(p);
  EXPECT_EQ(names(first), (std::vector<std::string>{"a", "b"}));  // c's 2 records would make 6
  EXPECT_EQ(first.applied, names(first));
  EXPECT_EQ(first.id, 1u);
  EXPECT_EQ(first.after, 0u);
  p.send(std::move(first));
  auto second = form(p);
  EXPECT_EQ(names(second), (std::vector<std::string>{"c", "d"}));
  EXPECT_EQ(second.id, 2u);
  EXPECT_EQ(second.after, 1u);  // stored only if batch 1 was
  EXPECT_EQ(p.queued(), 0u);
}

TEST(BatchPipeline, ARequestLargerThanTheLimitsGoesAloneAndTheByteLimitEndsABatch) {
  Pipeline p(limits(4, 100, 2));
  p.enqueue({"huge", 9, 10});
  p.enqueue({"x", 1, 60});
  p.enqueue({"y", 1, 60});
  p.enqueue({"z", 1, 60});
  EXPECT_EQ(names(form(p)), (std::vector<std::string>{"huge"}));  // the first op always goes
  // x and y pass 100 bytes together: y is the last op of the batch.
  EXPECT_EQ(names(form(p)), (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(names(form(p)), (std::vector<std::string>{"z"}));
}

TEST(BatchPipeline, RefusedRequestsAreAnsweredAndLeftOutWithoutCountingTheirRecords) {
  Pipeline p(limits(2, 1 << 20, 2));
  p.enqueue({"a", 1});
  p.enqueue({"no", 1, 10, true});
  p.enqueue({"b", 1});
  p.enqueue({"c", 1});
  std::vector<std::string> refused;
  auto batch = form(p, &refused);
  EXPECT_EQ(names(batch), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(refused, (std::vector<std::string>{"no"}));
  // All refused: a batch with nothing in it (the caller sends nothing).
  Pipeline q(limits(2, 1 << 20, 2));
  q.enqueue({"no", 1, 10, true});
  EXPECT_TRUE(form(q).ops.empty());
  EXPECT_TRUE(q.idle());
}

TEST(BatchPipeline, AtMostSoManyBatchesAreAtPersistenceAndTheyAreDurableInOrder) {
  Pipeline p(limits(1, 1 << 20, 2));
  for (const char* name : {"a", "b", "c"}) p.enqueue({name});
  p.send(form(p));
  p.send(form(p));
  EXPECT_EQ(p.in_flight(), 2u);
  EXPECT_FALSE(p.may_form());  // c waits: two batches are at persistence
  EXPECT_EQ(p.queued(), 1u);
  EXPECT_FALSE(p.durable(2));  // not the oldest: persistence answers in order
  auto one = p.durable(1);
  ASSERT_TRUE(one);
  EXPECT_EQ(names(*one), (std::vector<std::string>{"a"}));
  EXPECT_TRUE(p.may_form());
  EXPECT_FALSE(p.durable(1));  // answered once
  ASSERT_TRUE(p.durable(2));
  EXPECT_TRUE(p.nothing_ahead());
}

TEST(BatchPipeline, AFailedBatchTakesBackEveryBatchInFlightAndLaterRequestsStillWait) {
  Pipeline p(limits(1, 1 << 20, 3));
  for (const char* name : {"a", "b", "c", "d"}) p.enqueue({name});
  p.send(form(p));
  p.send(form(p));
  p.send(form(p));
  ASSERT_EQ(p.oldest_in_flight()->id, 1u);
  auto failed = p.fail_in_flight();
  ASSERT_EQ(failed.size(), 3u);
  EXPECT_EQ(failed.front().id, 1u);  // oldest first
  EXPECT_EQ(failed.back().id, 3u);
  EXPECT_EQ(p.in_flight(), 0u);
  EXPECT_EQ(p.oldest_in_flight(), nullptr);
  EXPECT_FALSE(p.durable(2));  // a late answer for a batch taken back changes nothing
  auto next = form(p);
  EXPECT_EQ(names(next), (std::vector<std::string>{"d"}));
  EXPECT_EQ(next.id, 4u);  // numbers are never reused
  EXPECT_EQ(next.after, 0u);
}

TEST(BatchPipeline, BatchesWaitingForReplicasAreReleasedInOrderAndBoundTheLine) {
  Pipeline p(limits(1, 1 << 20, 2, 2));
  for (const char* name : {"a", "b", "c"}) p.enqueue({name});
  p.send(form(p));
  p.await(*p.durable(1));
  p.send(form(p));
  p.await(*p.durable(2));
  EXPECT_EQ(p.awaiting(), 2u);
  EXPECT_FALSE(p.may_form());  // two batches wait for replicas: no more are formed
  EXPECT_FALSE(p.nothing_ahead());
  std::vector<std::uint64_t> released;
  // Batch 2 is replicated, batch 1 not yet: nothing is released out of order.
  p.release([](const Pipeline::Batch& b) { return b.id == 2; }, [&](Pipeline::Batch& b) { released.push_back(b.id); });
  EXPECT_TRUE(released.empty());
  p.release([](const Pipeline::Batch&) { return true; }, [&](Pipeline::Batch& b) { released.push_back(b.id); });
  EXPECT_EQ(released, (std::vector<std::uint64_t>{1, 2}));
  EXPECT_TRUE(p.may_form());
  p.send(form(p));
  p.await(*p.durable(3));
  auto left = p.take_awaiting();
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(names(left[0]), (std::vector<std::string>{"c"}));
  EXPECT_TRUE(p.idle());
}
