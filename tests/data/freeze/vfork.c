/* A vfork parent waits for its child where SIGSTOP doesn't reach it; the child pauses. */
#include <unistd.h>
int main(void) { if (vfork() == 0) { for (;;) pause(); } return 0; }
