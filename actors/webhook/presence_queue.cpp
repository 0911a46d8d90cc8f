#include "switchboard/actors/webhook/presence_queue.hpp"

#include <algorithm>

namespace switchboard::actors::webhook {

void PresenceQueue::push(Event event) {
  held_.push_back(std::move(event));
  // Over the bound: the oldest not on its way goes (a request on its way stays whole).
  while (held_.size() > options_.max_held && held_.size() > in_post_) {
    held_.erase(held_.begin() + static_cast<std::ptrdiff_t>(in_post_));
    ++dropped_;
  }
}

std::vector<PresenceQueue::Event> PresenceQueue::next(Clock::time_point now) {
  if (posting_ || held_.empty() || (retry_at_ && *retry_at_ > now)) return {};
  // A retry sends what failed again, no more and no less; a first try takes up to max_batch.
  if (in_post_ == 0) in_post_ = std::min(held_.size(), std::max<std::size_t>(1, options_.max_batch));
  posting_ = true;
  return {held_.begin(), held_.begin() + static_cast<std::ptrdiff_t>(in_post_)};
}

void PresenceQueue::posted(bool taken, Clock::time_point now) {
  if (!posting_) return;
  posting_ = false;
  if (!taken) {
    ++failures_;
    ++attempts_;
    if (!failing_since_) failing_since_ = now;
    auto wait = options_.retry_min;
    for (std::uint32_t i = 1; i < attempts_ && wait < options_.retry_max; ++i) wait *= 2;
    retry_at_ = now + std::min(wait, options_.retry_max);
    return;
  }
  held_.erase(held_.begin(), held_.begin() + static_cast<std::ptrdiff_t>(in_post_));
  delivered_ += in_post_;
  in_post_ = 0;
  attempts_ = 0;
  retry_at_.reset();
  failing_since_.reset();
}

std::optional<Clock::time_point> PresenceQueue::wake() const {
  if (posting_ || held_.empty()) return std::nullopt;
  return retry_at_;
}

}  // namespace switchboard::actors::webhook
