// A node's metrics: counters, gauges and latency histograms (prometheus-cpp), what
// each actor counts, and their renderings (Prometheus text, JSON). docs/METRICS.md
// lists every metric.
//
// The hot path stays cheap: every labelled child is resolved once, when the node
// starts (an actor counts through a pointer it holds); a counter is one atomic add; a
// latency is put in a thread-local bucket array and handed to the shared histogram
// once per batch (prometheus-cpp's Histogram takes a lock per Observe). Actors that
// were given no metrics (nullptr) count nothing.
//
// This header includes prometheus-cpp; the actors' public headers only forward-declare
// what is here.
#pragma once

#include <array>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>

#include "switchboard/common/error.hpp"

namespace switchboard::actors {

class ActorThread;
class Bridge;
class ApiServer;
class WebhookSender;

/// Latency buckets in seconds: 100 µs to 10 s.
extern const prometheus::Histogram::BucketBoundaries kLatencyBuckets;

/// Where families are registered, and the node label each carries.
struct MetricsScope {
  prometheus::Registry& registry;
  std::string node;
};

/// A histogram fed from one thread: observe() only touches thread-local buckets;
/// flush() hands what was observed to the shared histogram in one call.
class BatchedHistogram {
 public:
  BatchedHistogram(prometheus::Histogram& target, const prometheus::Histogram::BucketBoundaries& bounds);
  void observe(double value);
  void observe(std::chrono::steady_clock::duration elapsed) {
    observe(std::chrono::duration<double>(elapsed).count());
  }
  void flush();

 private:
  prometheus::Histogram* target_;
  const prometheus::Histogram::BucketBoundaries* bounds_;
  std::vector<double> pending_;  ///< per bucket, +Inf last
  double sum_ = 0;
  bool any_ = false;
};

/// What every actor counts: messages in and replies out by type, events it published
/// by type, and error replies by code. Types are indices into the name lists given at
/// construction (a protocol variant's alternatives, in order).
class MessageCounts {
 public:
  MessageCounts(const MetricsScope& scope, const std::string& actor, const std::vector<std::string>& received,
                const std::vector<std::string>& sent, const std::vector<std::string>& published);
  void received(std::size_t type) { received_[type]->Increment(); }
  void sent(std::size_t type) { sent_[type]->Increment(); }
  void published(std::size_t type) { published_[type]->Increment(); }
  void error(errc code) {
    const auto i = static_cast<std::size_t>(code);
    errors_[i < errors_.size() ? i : static_cast<std::size_t>(errc::internal)]->Increment();
  }

 private:
  std::vector<prometheus::Counter*> received_, sent_, published_, errors_;
};

struct ChatMetrics {
  explicit ChatMetrics(const MetricsScope& scope);
  /// received: request ops, then "unreadable"; sent: reply ops ("error" included);
  /// published: 0 "message" (its own rooms), 1 "relayed" (other nodes' rooms).
  MessageCounts messages;
  BatchedHistogram publish_durable;  ///< receipt of a publish -> chat knows it is durable
  BatchedHistogram publish_ack;      ///< receipt of a publish -> its ack handed to the runtime
  prometheus::Histogram& group_commit;  ///< a batch sent to persistence -> confirmed
  prometheus::Gauge& queued;         ///< requests waiting for the next batch
  prometheus::Gauge& in_flight;      ///< batches at persistence
  prometheus::Gauge& rooms;          ///< rooms this node owns
  /// Failover (docs/REPLICATION.md), by event: elections this node stood in, times it
  /// became a shard's primary by election, times it stopped being one, and messages of
  /// diverged log tails it took out of its history into the reconciled table; copies of
  /// its store it sent whole to a replica, and copies of a primary's store installed here.
  prometheus::Counter &elections, &promotions, &step_downs, &reconciled, &copies_sent, &copies_installed;
  /// Messages removed from rooms this node owns: by retention, and by trim_history
  /// requests of owners and operators.
  prometheus::Counter &trimmed_by_retention, &trimmed_by_request;
  /// Index of "unreadable" among the received types.
  std::size_t unreadable() const noexcept;
};

struct PresenceMetrics {
  explicit PresenceMetrics(const MetricsScope& scope);
  /// received: request ops, then "unreadable"; sent: reply ops; published: event kinds.
  MessageCounts messages;
  prometheus::Gauge& sessions;  ///< sessions open on this node
  std::size_t unreadable() const noexcept;
};

struct PersistenceMetrics {
  explicit PersistenceMetrics(const MetricsScope& scope);
  /// received: 0 "append", 1 "read"; sent: 0 "appended", 1 "page".
  MessageCounts messages;
  prometheus::Histogram& commit_records;  ///< records per write transaction (group commit)
  prometheus::Gauge& map_bytes;       ///< LMDB map size now
  prometheus::Gauge& used_bytes;      ///< pages in use x page size
  prometheus::Gauge& max_map_bytes;   ///< the map never grows past this
};

/// Every metric of one node. Families carry the constant label node=NAME.
class NodeMetrics {
 public:
  explicit NodeMetrics(const std::string& node);
  NodeMetrics(const NodeMetrics&) = delete;
  NodeMetrics& operator=(const NodeMetrics&) = delete;

  /// Families made at scrape time from figures kept elsewhere (the runtime's and the
  /// bridge's atomic counters); `collect` is called on the scraping thread.
  using Collector = std::function<void(std::vector<prometheus::MetricFamily>&)>;
  void add_collector(Collector collect);

  /// Every family, the collectors' included, sorted by name.
  std::vector<prometheus::MetricFamily> collect() const;
  /// The Prometheus text exposition format (version 0.0.4).
  std::string text() const;
  /// The same figures as JSON (docs/METRICS.md): what `switchboard stats` reads.
  std::string json() const;

  const std::string& node() const noexcept { return node_; }
  ChatMetrics& chat() noexcept { return chat_; }
  PresenceMetrics& presence() noexcept { return presence_; }
  PersistenceMetrics& persistence() noexcept { return persistence_; }

 private:
  std::string node_;
  std::shared_ptr<prometheus::Registry> registry_;
  MetricsScope scope_;
  ChatMetrics chat_;
  PresenceMetrics presence_;
  PersistenceMetrics persistence_;
  std::vector<Collector> collectors_;
};

/// Builds a family for a collector: one sample per add().
class FamilyBuilder {
 public:
  FamilyBuilder(std::string name, std::string help, prometheus::MetricType type, std::string node);
  FamilyBuilder& add(std::vector<prometheus::ClientMetric::Label> labels, double value);
  prometheus::MetricFamily take() { return std::move(family_); }

 private:
  prometheus::MetricFamily family_;
  std::string node_;
};

/// Adds to `metrics`, read at each scrape, each actor thread's runtime counters
/// (messages handled, replies dropped, handler failures, undeliverable sends, mailbox
/// backlog) and the bridge's figures (none: no bridge). They must outlive every scrape.
void collect_runtime(NodeMetrics& metrics, std::vector<const ActorThread*> actors, const Bridge* bridge);
/// Adds the HTTP API's figures (docs/METRICS.md), read at each scrape. `api` must
/// outlive every scrape.
void collect_api(NodeMetrics& metrics, const ApiServer& api);
/// The webhooks' families (docs/METRICS.md); `webhooks` must outlive the metrics' reads.
void collect_webhooks(NodeMetrics& metrics, const WebhookSender& webhooks);

}  // namespace switchboard::actors
