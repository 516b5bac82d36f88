// SPDX-License-Identifier: Apache-2.0
// FHIRPath functions, section "Filtering and projection": where(), select(), repeat().

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

Collection Evaluator::filteringFunction(const Node& node, const Collection& focus) {
  FunctionCall call(*this, node, focus);
  switch (node.fn) {
    case Fn::kWhere: {
      Collection out;
      for (size_t i = 0; i < focus.size(); ++i) {
        if (evalBoolWithThis(call.arg(0), focus[i], static_cast<int64_t>(i)) == true) {
          out.push_back(focus[i]);
        }
      }
      return out;
    }
    case Fn::kSelect: {
      Collection out;
      for (size_t i = 0; i < focus.size(); ++i) {
        Collection part = evalWithThis(call.arg(0), focus[i], static_cast<int64_t>(i));
        out.insert(out.end(), part.begin(), part.end());
      }
      return out;
    }
    case Fn::kRepeat: {
      Collection out;
      Collection pending = focus;
      for (int round = 0; !pending.empty() && round < 1000; ++round) {
        Collection next;
        for (size_t i = 0; i < pending.size(); ++i) {
          Collection part = evalWithThis(call.arg(0), pending[i], static_cast<int64_t>(i));
          for (Item& item : part) {
            bool seen = false;
            for (const Item& existing : out) {
              // Elements of the document are the same element only when they are the same
              // node; computed values compare by value.
              bool complex = item.isNode() && existing.isNode() && item.value() != nullptr &&
                             item.value()->IsObject();
              if (complex) {
                if (item.value() == existing.value()) {
                  seen = true;
                  break;
                }
                continue;
              }
              if (itemsEqual(existing, item).value_or(false)) {
                seen = true;
                break;
              }
            }
            if (!seen) {
              out.push_back(item);
              next.push_back(std::move(item));
            }
          }
        }
        pending = std::move(next);
      }
      return out;
    }
    default: break;
  }
  throw EvalError{"function " + node.name + "() is not available"};
}

}  // namespace fhir::fhirpath
