// SPDX-License-Identifier: Apache-2.0
// FHIRPath functions, section "Subsetting": single(), first(), last(), tail(), skip(), take(),
// intersect(), exclude().

#include <algorithm>
#include <cerrno>
#include <climits>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <unordered_map>

#include "conformance/fhirpath/functions.h"

namespace fhir::fhirpath {

Collection Evaluator::subsettingFunction(const Node& node, const Collection& focus) {
  FunctionCall call(*this, node, focus);
  switch (node.fn) {
    case Fn::kSingle: {
      const Item* item = call.single("call.single()");
      return item == nullptr ? Collection{} : Collection{*item};
    }
    case Fn::kFirst: return focus.empty() ? Collection{} : Collection{focus.front()};
    case Fn::kLast: return focus.empty() ? Collection{} : Collection{focus.back()};
    case Fn::kTail:
      return focus.size() <= 1 ? Collection{} : Collection(focus.begin() + 1, focus.end());
    case Fn::kSkip: {
      auto count = call.integerArg(0);
      if (!count) return {};
      if (*count <= 0) return focus;
      if (static_cast<size_t>(*count) >= focus.size()) return {};
      return Collection(focus.begin() + *count, focus.end());
    }
    case Fn::kTake: {
      auto count = call.integerArg(0);
      if (!count || *count <= 0) return {};
      if (static_cast<size_t>(*count) >= focus.size()) return focus;
      return Collection(focus.begin(), focus.begin() + *count);
    }
    case Fn::kIntersect:
    case Fn::kExclude: {
      Collection other = evalArg(call.arg(0));
      Collection out;
      for (const Item& item : focus) {
        bool in_other = false;
        for (const Item& candidate : other) {
          if (itemsEqual(item, candidate).value_or(false)) {
            in_other = true;
            break;
          }
        }
        if (node.fn == Fn::kExclude) {
          if (!in_other) out.push_back(item);
          continue;
        }
        if (!in_other) continue;
        bool seen = false;
        for (const Item& existing : out) {
          if (itemsEqual(existing, item).value_or(false)) {
            seen = true;
            break;
          }
        }
        if (!seen) out.push_back(item);
      }
      return out;
    }
    default: break;
  }
  throw EvalError{"function " + node.name + "() is not available"};
}

}  // namespace fhir::fhirpath
