/* The installed header must compile cleanly as C99 and as C++ with
 * -Wall -Wextra -Werror -pedantic, and its types must be usable. */
#include <wrd_capture.h>

int main(void) {
    wrd_capture_options o;
    wrd_stream_config c;
    wrd_frame_info i;
    wrd_event e;
    wrd_stream_stats s;
    (void)i; (void)e; (void)s;
    if (wrd_capture_options_init(&o) != WRD_OK) return 1;
    if (wrd_stream_config_init(&c) != WRD_OK) return 1;
    return wrd_status_message(WRD_ERR_PANIC)[0] ? 0 : 1;
}
