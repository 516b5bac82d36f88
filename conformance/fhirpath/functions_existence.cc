// SPDX-License-Identifier: Apache-2.0
// FHIRPath functions, section "Existence": empty(), exists(), all(), allTrue() .. anyFalse(),
// subsetOf(), supersetOf(), count(), distinct(), isDistinct().

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

Collection Evaluator::existenceFunction(const Node& node, const Collection& focus) {
  FunctionCall call(*this, node, focus);
  switch (node.fn) {
    case Fn::kEmpty: return boolean(focus.empty());
    case Fn::kExists:
      if (call.argc == 0) return boolean(!focus.empty());
      for (size_t i = 0; i < focus.size(); ++i) {
        if (evalBoolWithThis(call.arg(0), focus[i], static_cast<int64_t>(i)) == true) {
          return boolean(true);
        }
      }
      return boolean(false);
    case Fn::kAll:
      for (size_t i = 0; i < focus.size(); ++i) {
        if (evalBoolWithThis(call.arg(0), focus[i], static_cast<int64_t>(i)) != true) {
          return boolean(false);
        }
      }
      return boolean(true);
    case Fn::kAllTrue:
    case Fn::kAnyTrue:
    case Fn::kAllFalse:
    case Fn::kAnyFalse: {
      bool any_true = false, any_false = false;
      for (const Item& item : focus) {
        Val val = view(item);
        if (val.kind != Item::Kind::kBoolean) throw EvalError{node.name + "() requires booleans"};
        (val.boolean ? any_true : any_false) = true;
      }
      switch (node.fn) {
        case Fn::kAllTrue: return boolean(!any_false);
        case Fn::kAnyTrue: return boolean(any_true);
        case Fn::kAllFalse: return boolean(!any_true);
        default: return boolean(any_false);
      }
    }
    case Fn::kSubsetOf:
    case Fn::kSupersetOf: {
      Collection other = evalArg(call.arg(0));
      const Collection& sub = node.fn == Fn::kSubsetOf ? focus : other;
      const Collection& super = node.fn == Fn::kSubsetOf ? other : focus;
      for (const Item& item : sub) {
        bool found = false;
        for (const Item& candidate : super) {
          if (itemsEqual(item, candidate).value_or(false)) {
            found = true;
            break;
          }
        }
        if (!found) return boolean(false);
      }
      return boolean(true);
    }
    case Fn::kCount: return {Item::integer(static_cast<int64_t>(focus.size()))};
    case Fn::kDistinct:
    case Fn::kIsDistinct: {
      Collection out;
      for (const Item& item : focus) {
        bool seen = false;
        for (const Item& existing : out) {
          if (itemsEqual(existing, item).value_or(false)) {
            seen = true;
            break;
          }
        }
        if (!seen) out.push_back(item);
      }
      if (node.fn == Fn::kIsDistinct) return boolean(out.size() == focus.size());
      return out;
    }
    default: break;
  }
  throw EvalError{"function " + node.name + "() is not available"};
}

}  // namespace fhir::fhirpath
