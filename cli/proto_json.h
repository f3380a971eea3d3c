// The control API's Value (control.proto) as the project's Json, keys in the daemon's
// order, so `-o json|yaml|table` show what the daemon sent, byte for byte.
#pragma once

#include "common/json.h"
#include "control.pb.h"

namespace nodeagent::cli {

Json toJson(const v1::Value& v);

}  // namespace nodeagent::cli
