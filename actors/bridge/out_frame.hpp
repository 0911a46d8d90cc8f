// What the bridge sends to its WebSocket connections: a frame encoded once for every
// connection it goes to, as JSON text and msgpack (docs/PROTOCOL.md section 10).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "switchboard/common/room_sequencer.hpp"

namespace switchboard::actors {

using ConnId = FollowerId;

struct OutFrame {
  std::string text;
  std::string binary;
};
using SharedFrame = std::shared_ptr<const OutFrame>;

/// The bridge's in-order, exactly-once delivery of room messages to its connections.
using RoomDelivery = RoomSequencer<SharedFrame>;
using DeliveryActions = RoomDelivery::Actions;
using SeqFrame = RoomDelivery::Message;

}  // namespace switchboard::actors
