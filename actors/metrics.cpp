#include "switchboard/actors/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

#include <nlohmann/json.hpp>
#include <prometheus/text_serializer.h>

#include "switchboard/actors/api/api_server.hpp"
#include "switchboard/actors/bridge.hpp"
#include "switchboard/actors/runtime.hpp"
#include "switchboard/actors/webhook/webhook_sender.hpp"
#include "switchboard/transport/messages.hpp"
#include "switchboard/transport/presence_messages.hpp"

namespace switchboard::actors {
namespace {

using prometheus::Labels;

/// Every error code's wire name, in enum order.
std::vector<std::string> error_names() {
  std::vector<std::string> names;
  for (std::size_t code = 0; code < kErrcCount; ++code) names.emplace_back(errc_name(static_cast<errc>(code)));
  return names;
}

/// One child of `family` per name, labelled actor=ACTOR, LABEL=name.
template <class T>
std::vector<T*> children(prometheus::Family<T>& family, const std::string& actor, const std::string& label,
                         const std::vector<std::string>& names) {
  std::vector<T*> out;
  for (const auto& name : names) out.push_back(&family.Add({{"actor", actor}, {label, name}}));
  return out;
}

prometheus::Family<prometheus::Counter>& counters(const MetricsScope& scope, const std::string& name,
                                                  const std::string& help) {
  return prometheus::BuildCounter().Name(name).Help(help).Labels({{"node", scope.node}}).Register(scope.registry);
}

prometheus::Family<prometheus::Counter>& failover_events(const MetricsScope& scope) {
  return counters(scope, "switchboard_failover_events_total",
                  "Failover events of replicated shards on this node: election (stood in one), promotion (became a "
                  "shard's primary), step_down (stopped being one), reconciled_message (taken out of history), "
                  "copy_sent (a copy of the store sent whole to a replica), copy_installed (a primary's copy installed "
                  "here)");
}

prometheus::Family<prometheus::Counter>& trimmed_messages(const MetricsScope& scope) {
  return counters(scope, "switchboard_trimmed_messages_total",
                  "Messages removed from the history of rooms this node owns, by retention or by trim_history "
                  "requests");
}

prometheus::Gauge& gauge(const MetricsScope& scope, const std::string& name, const std::string& help) {
  return prometheus::BuildGauge().Name(name).Help(help).Labels({{"node", scope.node}}).Register(scope.registry).Add({});
}

prometheus::Histogram& histogram(const MetricsScope& scope, const std::string& name, const std::string& help,
                                 const prometheus::Histogram::BucketBoundaries& buckets) {
  return prometheus::BuildHistogram()
      .Name(name)
      .Help(help)
      .Labels({{"node", scope.node}})
      .Register(scope.registry)
      .Add({}, buckets);
}

const prometheus::Histogram::BucketBoundaries kRecordBuckets = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048,
                                                                4096, 8192, 16384};

/// The wire names of a protocol variant's alternatives, in index order (op_name of each).
template <class Variant>
std::vector<std::string> op_names() {
  return []<std::size_t... I>(std::index_sequence<I...>) {
    return std::vector<std::string>{transport::op_name(Variant(std::in_place_index<I>))...};
  }(std::make_index_sequence<std::variant_size_v<Variant>>());
}

/// A request variant's op names, then "unreadable" (a frame that did not decode).
template <class Variant>
std::vector<std::string> request_names() {
  auto names = op_names<Variant>();
  names.emplace_back("unreadable");
  return names;
}

const char* metric_type_name(prometheus::MetricType type) {
  switch (type) {
    case prometheus::MetricType::Counter: return "counter";
    case prometheus::MetricType::Gauge: return "gauge";
    case prometheus::MetricType::Histogram: return "histogram";
    case prometheus::MetricType::Summary: return "summary";
    case prometheus::MetricType::Untyped: break;
  }
  return "untyped";
}

}  // namespace

const prometheus::Histogram::BucketBoundaries kLatencyBuckets = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                                                 0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                                                 1,      2.5,     5,      10};

BatchedHistogram::BatchedHistogram(prometheus::Histogram& target, const prometheus::Histogram::BucketBoundaries& bounds)
    : target_(&target), bounds_(&bounds), pending_(bounds.size() + 1, 0.0) {}

void BatchedHistogram::observe(double value) {
  // The first bucket whose upper bound is >= value (Prometheus buckets are "le").
  const auto bucket = std::lower_bound(bounds_->begin(), bounds_->end(), value) - bounds_->begin();
  pending_[static_cast<std::size_t>(bucket)] += 1;
  sum_ += value;
  any_ = true;
}

void BatchedHistogram::flush() {
  if (!any_) return;
  target_->ObserveMultiple(pending_, sum_);
  std::fill(pending_.begin(), pending_.end(), 0.0);
  sum_ = 0;
  any_ = false;
}

MessageCounts::MessageCounts(const MetricsScope& scope, const std::string& actor,
                             const std::vector<std::string>& received, const std::vector<std::string>& sent,
                             const std::vector<std::string>& published) {
  received_ = children(counters(scope, "switchboard_messages_received_total",
                                "Messages an actor took in, by type (requests by op; unreadable: frames that did "
                                "not decode)"),
                       actor, "type", received);
  sent_ = children(counters(scope, "switchboard_messages_sent_total",
                            "Replies an actor sent, by op (error: error replies)"),
                   actor, "type", sent);
  published_ = children(counters(scope, "switchboard_events_published_total",
                                 "Frames an actor published on its PUB, by type"),
                        actor, "type", published);
  errors_ = children(counters(scope, "switchboard_errors_total", "Error replies an actor sent, by error code"), actor,
                     "code", error_names());
}

ChatMetrics::ChatMetrics(const MetricsScope& scope)
    : messages(scope, "chat", request_names<transport::RequestBody>(), op_names<transport::ReplyBody>(),
               {"message", "relayed"}),
      publish_durable(histogram(scope, "switchboard_publish_durable_seconds",
                                "From chat receiving a publish to chat knowing it is durable (one per stored message)",
                                kLatencyBuckets),
                      kLatencyBuckets),
      publish_ack(histogram(scope, "switchboard_publish_ack_seconds",
                            "From chat receiving a publish to its ack going out (one per ack, retries included)",
                            kLatencyBuckets),
                  kLatencyBuckets),
      group_commit(histogram(scope, "switchboard_group_commit_seconds",
                             "From chat sending a batch to persistence to persistence confirming it durable",
                             kLatencyBuckets)),
      queued(gauge(scope, "switchboard_chat_queued_requests", "Requests waiting in chat for the next batch")),
      in_flight(gauge(scope, "switchboard_chat_batches_in_flight", "Batches chat has at persistence")),
      rooms(gauge(scope, "switchboard_rooms", "Rooms this node's chat owns")),
      elections(failover_events(scope).Add({{"event", "election"}})),
      promotions(failover_events(scope).Add({{"event", "promotion"}})),
      step_downs(failover_events(scope).Add({{"event", "step_down"}})),
      reconciled(failover_events(scope).Add({{"event", "reconciled_message"}})),
      copies_sent(failover_events(scope).Add({{"event", "copy_sent"}})),
      copies_installed(failover_events(scope).Add({{"event", "copy_installed"}})),
      trimmed_by_retention(trimmed_messages(scope).Add({{"by", "retention"}})),
      trimmed_by_request(trimmed_messages(scope).Add({{"by", "request"}})) {}

std::size_t ChatMetrics::unreadable() const noexcept { return std::variant_size_v<transport::RequestBody>; }

PresenceMetrics::PresenceMetrics(const MetricsScope& scope)
    : messages(scope, "presence", request_names<transport::PresenceRequestBody>(),
               op_names<transport::PresenceReplyBody>(), {"online", "offline", "join", "leave", "status", "typing"}),
      sessions(gauge(scope, "switchboard_presence_sessions", "Presence sessions open on this node")) {}

std::size_t PresenceMetrics::unreadable() const noexcept { return std::variant_size_v<transport::PresenceRequestBody>; }

PersistenceMetrics::PersistenceMetrics(const MetricsScope& scope)
    : messages(scope, "persistence", {"append", "read"}, {"appended", "page"}, {}),
      commit_records(histogram(scope, "switchboard_group_commit_records",
                               "Records written by one write transaction (a group commit of every batch that waited)",
                               kRecordBuckets)),
      map_bytes(gauge(scope, "switchboard_store_map_bytes", "LMDB map size now (it grows by doubling)")),
      used_bytes(gauge(scope, "switchboard_store_used_bytes", "LMDB pages in use, in bytes")),
      max_map_bytes(gauge(scope, "switchboard_store_max_map_bytes", "The LMDB map never grows past this")) {}

NodeMetrics::NodeMetrics(const std::string& node)
    : node_(node),
      registry_(std::make_shared<prometheus::Registry>()),
      scope_{*registry_, node},
      chat_(scope_),
      presence_(scope_),
      persistence_(scope_) {}

void NodeMetrics::add_collector(Collector collect) { collectors_.push_back(std::move(collect)); }

std::vector<prometheus::MetricFamily> NodeMetrics::collect() const {
  auto families = registry_->Collect();
  for (const auto& c : collectors_) c(families);
  std::sort(families.begin(), families.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return families;
}

std::string NodeMetrics::text() const {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, collect());
  return out.str();
}

std::string NodeMetrics::json() const {
  using nlohmann::json;
  json metrics = json::array();
  for (const auto& family : collect()) {
    json samples = json::array();
    for (const auto& m : family.metric) {
      json labels = json::object();
      for (const auto& l : m.label) labels[l.name] = l.value;
      json sample = {{"labels", std::move(labels)}};
      switch (family.type) {
        case prometheus::MetricType::Counter: sample["value"] = m.counter.value; break;
        case prometheus::MetricType::Gauge: sample["value"] = m.gauge.value; break;
        case prometheus::MetricType::Histogram: {
          sample["count"] = m.histogram.sample_count;
          sample["sum"] = m.histogram.sample_sum;
          json buckets = json::array();
          for (const auto& b : m.histogram.bucket)  // the +Inf bucket is the count
            if (std::isfinite(b.upper_bound)) buckets.push_back({b.upper_bound, b.cumulative_count});
          sample["buckets"] = std::move(buckets);
          break;
        }
        default: sample["value"] = m.untyped.value; break;
      }
      samples.push_back(std::move(sample));
    }
    metrics.push_back(
        {{"name", family.name}, {"help", family.help}, {"type", metric_type_name(family.type)}, {"samples", samples}});
  }
  return json{{"node", node_}, {"metrics", std::move(metrics)}}.dump();
}

FamilyBuilder::FamilyBuilder(std::string name, std::string help, prometheus::MetricType type, std::string node)
    : node_(std::move(node)) {
  family_.name = std::move(name);
  family_.help = std::move(help);
  family_.type = type;
}

FamilyBuilder& FamilyBuilder::add(std::vector<prometheus::ClientMetric::Label> labels, double value) {
  prometheus::ClientMetric m;
  m.label.push_back({"node", node_});
  for (auto& l : labels) m.label.push_back(std::move(l));
  if (family_.type == prometheus::MetricType::Counter) m.counter.value = value;
  else m.gauge.value = value;
  family_.metric.push_back(std::move(m));
  return *this;
}

void collect_runtime(NodeMetrics& metrics, std::vector<const ActorThread*> actors, const Bridge* bridge) {
  using prometheus::MetricType;
  const std::string node = metrics.node();
  metrics.add_collector([actors = std::move(actors), node](std::vector<prometheus::MetricFamily>& out) {
    struct Figure {
      const char* name;
      const char* help;
      MetricType type;
      const std::atomic<std::uint64_t> ActorCounters::*value;
    };
    static const Figure figures[] = {
        {"switchboard_actor_messages_total", "Messages the runtime handed to an actor, from every socket",
         MetricType::Counter, &ActorCounters::messages},
        {"switchboard_actor_replies_dropped_total",
         "Replies that could not go out: the caller is gone or its queue is at the high-water mark",
         MetricType::Counter, &ActorCounters::replies_dropped},
        {"switchboard_actor_handler_failures_total", "Handlers that threw (logged; the actor carries on)",
         MetricType::Counter, &ActorCounters::handler_failures},
        {"switchboard_actor_undeliverable_total",
         "Sends to another node or a service that could not go out (no connection, or its queue full)",
         MetricType::Counter, &ActorCounters::undeliverable},
        {"switchboard_mailbox_backlog",
         "Messages that were waiting in an actor's mailbox when it last read it (one read round, at most 4096)",
         MetricType::Gauge, &ActorCounters::mailbox_backlog},
    };
    for (const auto& f : figures) {
      FamilyBuilder family(f.name, f.help, f.type, node);
      for (const ActorThread* a : actors)
        family.add({{"actor", a->name()}},
                   static_cast<double>((a->counters().*f.value).load(std::memory_order_relaxed)));
      out.push_back(family.take());
    }
  });
  if (bridge == nullptr) return;
  metrics.add_collector([bridge, node](std::vector<prometheus::MetricFamily>& out) {
    const BridgeStats s = bridge->stats();
    const std::pair<FamilyBuilder, std::uint64_t> figures[] = {
        {{"switchboard_bridge_connections", "Open WebSocket connections", MetricType::Gauge, node}, s.connections},
        {{"switchboard_bridge_frames_sent_total", "Frames written to WebSocket connections (replies, messages, events)",
          MetricType::Counter, node},
         s.delivered},
        {{"switchboard_bridge_slow_closed_total", "WebSocket connections closed for falling behind (4008)",
          MetricType::Counter, node},
         s.slow_closed},
        {{"switchboard_bridge_bad_frames_total", "WebSocket frames answered with an error", MetricType::Counter, node},
         s.bad_frames},
        {{"switchboard_bridge_history_fetches_total",
          "History pages the bridge asked: catch-up of a resuming client, and repair of a gap the PUB left",
          MetricType::Counter, node},
         s.fetches},
        {{"switchboard_bridge_rate_limited_total",
          "Requests answered rate_limited by a token bucket (a user's publishes or typing, a connection's requests)",
          MetricType::Counter, node},
         s.rate_limited},
    };
    for (auto [family, value] : figures) out.push_back(family.add({}, static_cast<double>(value)).take());
  });
}

void collect_api(NodeMetrics& metrics, const ApiServer& api) {
  using prometheus::MetricType;
  metrics.add_collector([&api, node = metrics.node()](std::vector<prometheus::MetricFamily>& out) {
    const ApiStats s = api.stats();
    out.push_back(FamilyBuilder("switchboard_api_connections", "Open HTTP connections to the server API",
                                MetricType::Gauge, node)
                      .add({}, static_cast<double>(s.connections))
                      .take());
    FamilyBuilder answered("switchboard_api_requests_total", "HTTP API requests answered, by HTTP status",
                           MetricType::Counter, node);
    for (const auto& [status, n] : s.answered) answered.add({{"status", std::to_string(status)}}, static_cast<double>(n));
    out.push_back(answered.take());
  });
}

void collect_webhooks(NodeMetrics& metrics, const WebhookSender& webhooks) {
  using prometheus::MetricType;
  metrics.add_collector([&webhooks, node = metrics.node()](std::vector<prometheus::MetricFamily>& out) {
    const auto all = webhooks.stats();
    const auto now = webhook::Clock::now();
    FamilyBuilder delivered("switchboard_webhook_delivered_total", "Events a webhook's receiver took (a 2xx answer)",
                            MetricType::Counter, node);
    FamilyBuilder failures("switchboard_webhook_failures_total",
                           "Requests to a webhook's receiver that failed (no answer in time, no connection, not a 2xx); "
                           "each is retried",
                           MetricType::Counter, node);
    FamilyBuilder skipped("switchboard_webhook_skipped_total",
                          "Events trimmed by retention before their webhook delivered them", MetricType::Counter, node);
    FamilyBuilder pending("switchboard_webhook_pending_events",
                          "Events stored in rooms this node writes and not yet delivered to the webhook",
                          MetricType::Gauge, node);
    FamilyBuilder up("switchboard_webhook_up", "1 when the webhook's last request was taken, 0 when it failed",
                     MetricType::Gauge, node);
    FamilyBuilder failing("switchboard_webhook_failing_seconds",
                          "How long the webhook's oldest failing request has been failing (0: none is)",
                          MetricType::Gauge, node);
    for (const auto& w : all) {
      const std::vector<prometheus::ClientMetric::Label> label{{"webhook", w.name}};
      delivered.add(label, static_cast<double>(w.stats.delivered));
      failures.add(label, static_cast<double>(w.stats.failures));
      skipped.add(label, static_cast<double>(w.stats.skipped));
      pending.add(label, static_cast<double>(w.stats.pending));
      up.add(label, w.stats.up ? 1.0 : 0.0);
      failing.add(label, w.stats.failing_since
                             ? std::chrono::duration<double>(now - *w.stats.failing_since).count()
                             : 0.0);
    }
    for (auto* f : {&delivered, &failures, &skipped, &pending, &up, &failing}) out.push_back(f->take());
  });
}

}  // namespace switchboard::actors
