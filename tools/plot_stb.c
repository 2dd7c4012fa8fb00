/*
 * The implementations of the stb single-header libraries the plot library uses, compiled once.
 * They come from the system's stb package (Debian: libstb-dev), not from this repository.
 */
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>

#define STB_TRUETYPE_IMPLEMENTATION
#include <stb/stb_truetype.h>
