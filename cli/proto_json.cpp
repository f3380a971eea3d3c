#include "cli/proto_json.h"

namespace nodeagent::cli {

Json toJson(const v1::Value& v) {
  switch (v.kind_case()) {
    case v1::Value::kBoolValue: return Json(v.bool_value());
    case v1::Value::kIntValue: return Json(static_cast<long long>(v.int_value()));
    case v1::Value::kDoubleValue: return Json(v.double_value());
    case v1::Value::kStringValue: return Json(v.string_value());
    case v1::Value::kListValue: {
      Json out = Json::array();
      for (const auto& e : v.list_value().values()) out.push(toJson(e));
      return out;
    }
    case v1::Value::kObjectValue: {
      Json out = Json::object();
      for (const auto& f : v.object_value().fields()) out.set(f.key(), toJson(f.value()));
      return out;
    }
    case v1::Value::KIND_NOT_SET: break;
  }
  return Json();
}

}  // namespace nodeagent::cli
