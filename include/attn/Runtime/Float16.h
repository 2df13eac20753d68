//===- Float16.h - f16 / bf16 conversions -----------------------*- C++ -*-===//
//
// IEEE binary16 and bfloat16 from/to f32, round to nearest even, NaN kept.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_RUNTIME_FLOAT16_H
#define ATTN_RUNTIME_FLOAT16_H

#include <cstdint>
#include <cstring>

namespace attn {

inline uint32_t floatBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float bitsToFloat(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline uint16_t floatToBF16(float f) {
  uint32_t u = floatBits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) // NaN: keep it quiet
    return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
inline float bf16ToFloat(uint16_t h) { return bitsToFloat(uint32_t(h) << 16); }

inline float f16ToFloat(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  if (exp == 0x1f) // inf / NaN
    return bitsToFloat(sign | 0x7f800000u | (mant << 13));
  if (exp == 0) {
    if (mant == 0)
      return bitsToFloat(sign);
    // Subnormal: value = mant * 2^-24.
    float v = static_cast<float>(mant) * (1.0f / 16777216.0f);
    return sign ? -v : v;
  }
  return bitsToFloat(sign | ((exp + 112) << 23) | (mant << 13));
}

inline uint16_t floatToF16(float f) {
  uint32_t u = floatBits(f);
  uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  uint32_t absU = u & 0x7fffffffu;
  if (absU > 0x7f800000u) // NaN
    return sign | 0x7e00u;
  if (absU >= 0x477ff000u) // rounds to >= 65520: inf
    return sign | 0x7c00u;
  if (absU < 0x38800000u) { // below the smallest normal (2^-14)
    // Round absU * 2^24 to an integer, nearest even.
    float v = bitsToFloat(absU) * 16777216.0f;
    uint32_t m = static_cast<uint32_t>(v);
    float rem = v - static_cast<float>(m);
    if (rem > 0.5f || (rem == 0.5f && (m & 1u)))
      ++m;
    return sign | static_cast<uint16_t>(m);
  }
  uint32_t exp = (absU >> 23) - 112, mant = absU & 0x7fffffu;
  uint32_t h = (exp << 10) | (mant >> 13);
  uint32_t rest = mant & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u)))
    ++h; // may carry into the exponent, which is right
  return sign | static_cast<uint16_t>(h);
}

} // namespace attn

#endif // ATTN_RUNTIME_FLOAT16_H
