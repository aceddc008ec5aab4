// glibc-compat.cc: the three symbols that @jazzer.js/fuzzer's prebuilt Linux addon needs from glibc 2.38 and
// libstdc++ 13 (GCC 13), for older systems (Debian 12 has glibc 2.36 and GCC 12). scripts/fuzz.js builds this
// into a shared library, marks those symbol versions weak in a copy of the addon, and preloads the library.
//  - __isoc23_strtol / __isoc23_strtoul: C23's strtol/strtoul, which also read a 0b/0B binary prefix.
//  - std::ios_base_library_init(): GCC 13 calls it to make sure the iostreams are initialised; the older
//    libstdc++ initialises them through a static std::ios_base::Init object instead, which this file holds.
#include <cctype>
#include <cstdlib>
#include <ios>

namespace {
// The digits after a C23 binary prefix, or nullptr when `s` has none for this base.
const char *binaryDigits(const char *s, int base, bool *negative) {
  while (std::isspace(static_cast<unsigned char>(*s))) s++;
  *negative = false;
  if (*s == '+' || *s == '-') *negative = *s++ == '-';
  if ((base == 0 || base == 2) && s[0] == '0' && (s[1] == 'b' || s[1] == 'B') && (s[2] == '0' || s[2] == '1')) return s + 2;
  return nullptr;
}
std::ios_base::Init iosInit;
}  // namespace

extern "C" long __isoc23_strtol(const char *s, char **end, int base) {
  bool negative;
  const char *digits = binaryDigits(s, base, &negative);
  if (digits == nullptr) return std::strtol(s, end, base);
  long v = std::strtol(digits, end, 2);
  return negative ? -v : v;
}

extern "C" unsigned long __isoc23_strtoul(const char *s, char **end, int base) {
  bool negative;
  const char *digits = binaryDigits(s, base, &negative);
  if (digits == nullptr) return std::strtoul(s, end, base);
  unsigned long v = std::strtoul(digits, end, 2);
  return negative ? -v : v;
}

namespace std {
void ios_base_library_init() {}
}  // namespace std
