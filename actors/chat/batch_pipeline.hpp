// Chat's group commit: the line a write request waits in, the batches at persistence,
// and the batches durable here that wait for replicas.
//
// Requests wait in arrival order (queued). A batch is formed from the front of the line
// while it stays within its limits (records and bytes; one request at least, whatever
// its size), and only while fewer than `max_in_flight` batches are at persistence and
// fewer than `max_awaiting` wait for replicas. Batches are numbered 1, 2, 3, ... and each
// names the batch sent before it (`after`): persistence stores a batch only if that one
// was stored, so when one fails, every batch after it fails too, and chat takes them all
// back. Persistence answers in order: a batch is durable only when it is the oldest in
// flight; an answer for any other was rolled back already and is ignored. Batches
// durable here are released in order too, once each is replicated enough.
//
// What a request is and what a batch carries besides (undo entries, replication log
// positions) are chat's: `Op` and `Extra`. No sockets, no store, no clock but the time
// it is given; one thread.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <utility>
#include <vector>

#include "switchboard/actors/actor.hpp"

namespace switchboard::actors {

template <class Op, class Extra>
class BatchPipeline {
 public:
  struct Limits {
    std::size_t max_records = 4096;            ///< records in one batch
    std::size_t max_bytes = 8 * 1024 * 1024;   ///< bytes in one batch (the op that passes it is the last)
    std::size_t max_in_flight = 2;             ///< batches at persistence at once
    std::size_t max_awaiting = 256;            ///< batches durable here, waiting for replicas
  };
  struct Batch : Extra {
    std::uint64_t id = 0;
    std::uint64_t after = 0;  ///< the batch in flight before it when it was formed (0: none)
    std::vector<Op> ops;
    SteadyClock::time_point sent{};  ///< when it was formed
  };
  /// What taking one op into a batch costs before it is applied: the records and bytes
  /// it will add (an estimate; a refused op adds none).
  struct Weight {
    std::size_t records = 1, bytes = 0;
  };

  explicit BatchPipeline(Limits limits) : limits_(limits) {}

  void enqueue(Op op) { queue_.push_back(std::move(op)); }

  std::size_t queued() const noexcept { return queue_.size(); }
  std::size_t in_flight() const noexcept { return in_flight_.size(); }
  std::size_t awaiting() const noexcept { return awaiting_.size(); }
  bool idle() const noexcept { return queue_.empty() && in_flight_.empty() && awaiting_.empty(); }
  /// Nothing at persistence and nothing waiting for replicas: a batch that writes
  /// nothing may be answered at once without passing anything in line.
  bool nothing_ahead() const noexcept { return in_flight_.empty() && awaiting_.empty(); }

  /// Whether a batch may be formed now.
  bool may_form() const noexcept {
    return !queue_.empty() && in_flight_.size() < limits_.max_in_flight && awaiting_.size() < limits_.max_awaiting;
  }

  /// Forms the next batch from the front of the line. For each op taken, `weigh(op)`
  /// says what it will add, and `admit(op, batch)` applies it: the records it added, or
  /// nullopt if it refused it (then it answered it, and the op is not in the batch).
  /// Ops are taken while the records admitted plus the next op's stay within
  /// max_records and the bytes taken are under max_bytes; the first op always. The
  /// batch may end up with no ops (all refused).
  template <class Weigh, class Admit>
  Batch form(SteadyClock::time_point now, Weigh&& weigh, Admit&& admit) {
    Batch batch;
    batch.id = ++last_id_;
    batch.after = in_flight_.empty() ? 0 : in_flight_.back().id;
    batch.sent = now;
    batch.ops.reserve(std::min(queue_.size(), limits_.max_records));  // grown once, not per op
    std::size_t records = 0, bytes = 0;
    while (!queue_.empty()) {
      const Weight next = weigh(queue_.front());
      if (records > 0 && (records + next.records > limits_.max_records || bytes >= limits_.max_bytes)) break;
      Op op = std::move(queue_.front());
      queue_.pop_front();
      bytes += next.bytes;
      if (std::optional<std::size_t> added = admit(op, batch)) {
        records += *added;
        batch.ops.push_back(std::move(op));
      }
    }
    return batch;
  }

  /// A formed batch goes to persistence.
  void send(Batch batch) { in_flight_.push_back(std::move(batch)); }

  /// The oldest batch at persistence, or nullptr.
  const Batch* oldest_in_flight() const noexcept { return in_flight_.empty() ? nullptr : &in_flight_.front(); }

  /// Persistence stored batch `id`: the batch, if it is the oldest in flight (else it
  /// was rolled back already: nullopt).
  std::optional<Batch> durable(std::uint64_t id) {
    if (in_flight_.empty() || in_flight_.front().id != id) return std::nullopt;
    Batch batch = std::move(in_flight_.front());
    in_flight_.pop_front();
    return batch;
  }

  /// A batch failed: every batch in flight, oldest first (none of them is stored).
  std::deque<Batch> fail_in_flight() { return std::exchange(in_flight_, {}); }

  /// A durable batch that waits for replicas before it is answered.
  void await(Batch batch) { awaiting_.push_back(std::move(batch)); }
  /// Batches waiting for replicas, oldest first.
  std::deque<Batch>& awaiting_batches() noexcept { return awaiting_; }
  /// Releases waiting batches in order while `ready(batch)`, handing each to `release`.
  template <class Ready, class Release>
  void release(Ready&& ready, Release&& release) {
    while (!awaiting_.empty() && ready(awaiting_.front())) {
      release(awaiting_.front());
      awaiting_.pop_front();
    }
  }
  /// Every batch still waiting for replicas, oldest first; none waits any more.
  std::deque<Batch> take_awaiting() { return std::exchange(awaiting_, {}); }

 private:
  Limits limits_;
  std::deque<Op> queue_;
  std::deque<Batch> in_flight_;  ///< oldest first, as persistence answers them
  std::deque<Batch> awaiting_;   ///< durable here, waiting for replicas, in order
  std::uint64_t last_id_ = 0;
};

}  // namespace switchboard::actors
