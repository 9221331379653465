#ifndef CRAB_VERSION_H
#define CRAB_VERSION_H
#define CRAB_VERSION "0.1.0"
#endif
