// A CallOutput for calling module commands directly in tests: drops progress, never cancels.
#pragma once

#include "core/module.h"

namespace nodeagent::sysctl {

class NullOutput : public core::CallOutput {
 public:
  void progress(const Json&) override {}
  bool cancelled() const override { return false; }
};

}  // namespace nodeagent::sysctl
