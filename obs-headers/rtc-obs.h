/*
 * rtc-obs.h — the part of the libobs C API that RTC Studio uses.
 *
 * Written for this project from libobs's documented ABI; it is not a copy of OBS's headers. It declares only what
 * the plugin and its headless runner call, at the oldest ABI we support (libobs 29.0). Where later libobs versions
 * appended fields to a registration struct, those fields are declared after a marker comment and the plugin
 * registers with the struct size that the running libobs knows (see plugin/obs/module.rs).
 *
 * tests/abi_layout.rs compiles a C program against the system's libobs-dev headers and compares every size,
 * offset and constant declared here with what bindgen produced from this file.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- opaque handles ------------------------------------------------------------------------------------------- */
typedef struct obs_data obs_data_t;
typedef struct obs_output obs_output_t;
typedef struct obs_service obs_service_t;
typedef struct obs_encoder obs_encoder_t;
typedef struct obs_source obs_source_t;
typedef struct obs_scene obs_scene_t;
typedef struct obs_scene_item obs_sceneitem_t;
typedef struct obs_module obs_module_t;
typedef struct obs_properties obs_properties_t;
typedef struct obs_property obs_property_t;
typedef struct video_output video_t;
typedef struct audio_output audio_t;
typedef struct text_lookup lookup_t;
typedef struct signal_handler signal_handler_t;
typedef struct calldata calldata_t;
typedef struct profiler_name_store profiler_name_store_t;
struct video_data;
struct audio_data;
struct obs_service_resolution;

/* ---- constants ------------------------------------------------------------------------------------------------ */
/* output capability flags */
#define OBS_OUTPUT_VIDEO 1u
#define OBS_OUTPUT_AUDIO 2u
#define OBS_OUTPUT_AV 3u
#define OBS_OUTPUT_ENCODED 4u
#define OBS_OUTPUT_SERVICE 8u

/* codes for obs_output_signal_stop */
#define OBS_OUTPUT_SUCCESS 0
#define OBS_OUTPUT_BAD_PATH (-1)
#define OBS_OUTPUT_CONNECT_FAILED (-2)
#define OBS_OUTPUT_INVALID_STREAM (-3)
#define OBS_OUTPUT_ERROR (-4)
#define OBS_OUTPUT_DISCONNECTED (-5)
#define OBS_OUTPUT_UNSUPPORTED (-6)
#define OBS_OUTPUT_NO_SPACE (-7)
#define OBS_OUTPUT_ENCODE_ERROR (-8)

/* blog levels */
#define LOG_ERROR 100
#define LOG_WARNING 200
#define LOG_INFO 300
#define LOG_DEBUG 400

/* obs_reset_video / obs_open_module results */
#define OBS_VIDEO_SUCCESS 0
#define MODULE_SUCCESS 0

/* ---- enums (values as libobs defines them) -------------------------------------------------------------------- */
enum obs_encoder_type { OBS_ENCODER_AUDIO = 0, OBS_ENCODER_VIDEO = 1 };

/* What an encoder can do (obs_encoder_get_caps): take bitrate changes while encoding. */
#define OBS_ENCODER_CAP_DYN_BITRATE (1u << 2)

enum video_format { VIDEO_FORMAT_NONE = 0, VIDEO_FORMAT_I420 = 1, VIDEO_FORMAT_NV12 = 2 };
enum video_colorspace { VIDEO_CS_DEFAULT = 0, VIDEO_CS_601 = 1, VIDEO_CS_709 = 2 };
enum video_range_type { VIDEO_RANGE_DEFAULT = 0, VIDEO_RANGE_PARTIAL = 1, VIDEO_RANGE_FULL = 2 };
enum obs_scale_type { OBS_SCALE_DISABLE = 0, OBS_SCALE_POINT = 1, OBS_SCALE_BICUBIC = 2 };
enum speaker_layout { SPEAKERS_UNKNOWN = 0, SPEAKERS_MONO = 1, SPEAKERS_STEREO = 2 };

enum obs_text_type { OBS_TEXT_DEFAULT = 0, OBS_TEXT_PASSWORD = 1, OBS_TEXT_MULTILINE = 2, OBS_TEXT_INFO = 3 };
enum obs_combo_type { OBS_COMBO_TYPE_INVALID = 0, OBS_COMBO_TYPE_EDITABLE = 1, OBS_COMBO_TYPE_LIST = 2 };
enum obs_combo_format {
	OBS_COMBO_FORMAT_INVALID = 0,
	OBS_COMBO_FORMAT_INT = 1,
	OBS_COMBO_FORMAT_FLOAT = 2,
	OBS_COMBO_FORMAT_STRING = 3
};

enum obs_source_type { OBS_SOURCE_TYPE_INPUT = 0, OBS_SOURCE_TYPE_FILTER = 1, OBS_SOURCE_TYPE_TRANSITION = 2 };
/* a source type that OBS lists nowhere (the settings dialog's private source) */
#define OBS_SOURCE_CAP_DISABLED (1 << 10)
enum obs_group_type { OBS_COMBO_INVALID = 0, OBS_GROUP_NORMAL = 1, OBS_GROUP_CHECKABLE = 2 };
/* the properties view applies changes (calls `update`) only on OK */
#define OBS_PROPERTIES_DEFER_UPDATE (1 << 0)
enum obs_nix_platform_type { OBS_NIX_PLATFORM_X11_GLX = 0, OBS_NIX_PLATFORM_X11_EGL = 1 };

/* ---- structs -------------------------------------------------------------------------------------------------- */
struct encoder_packet {
	uint8_t *data;
	size_t size;
	int64_t pts;
	int64_t dts;
	int32_t timebase_num;
	int32_t timebase_den;
	enum obs_encoder_type type;
	bool keyframe;
	int64_t dts_usec;
	int64_t sys_dts_usec;
	int priority;
	int drop_priority;
	size_t track_idx;
	obs_encoder_t *encoder;
};

struct obs_video_info {
	const char *graphics_module;
	uint32_t fps_num;
	uint32_t fps_den;
	uint32_t base_width;
	uint32_t base_height;
	uint32_t output_width;
	uint32_t output_height;
	enum video_format output_format;
	uint32_t adapter;
	bool gpu_conversion;
	enum video_colorspace colorspace;
	enum video_range_type range;
	enum obs_scale_type scale_type;
};

struct obs_audio_info {
	uint32_t samples_per_sec;
	enum speaker_layout speakers;
};

struct obs_output_info {
	const char *id;
	uint32_t flags;
	const char *(*get_name)(void *type_data);
	void *(*create)(obs_data_t *settings, obs_output_t *output);
	void (*destroy)(void *data);
	bool (*start)(void *data);
	void (*stop)(void *data, uint64_t ts);
	void (*raw_video)(void *data, struct video_data *frame);
	void (*raw_audio)(void *data, struct audio_data *frames);
	void (*encoded_packet)(void *data, struct encoder_packet *packet);
	void (*update)(void *data, obs_data_t *settings);
	void (*get_defaults)(obs_data_t *settings);
	obs_properties_t *(*get_properties)(void *data);
	void (*unused1)(void *data);
	uint64_t (*get_total_bytes)(void *data);
	int (*get_dropped_frames)(void *data);
	void *type_data;
	void (*free_type_data)(void *type_data);
	float (*get_congestion)(void *data);
	int (*get_connect_time_ms)(void *data);
	const char *encoded_video_codecs;
	const char *encoded_audio_codecs;
	void (*raw_audio2)(void *data, size_t idx, struct audio_data *frames);
	/* ---- appended in libobs 29.1: absent from the 29.0 struct ---- */
	const char *protocols;
};

/* A source type (29.0's struct, whole: libobs reads fields past the ones a module sets). Only the settings
 * dialog's private source uses it: id, type, flags, name, create/destroy, defaults, properties, update. The other
 * callbacks are declared with their names and without their argument types, as the plugin never sets them. */
typedef void (*obs_source_unused_fn)(void);
struct obs_source_info {
	const char *id;
	enum obs_source_type type;
	uint32_t output_flags;
	const char *(*get_name)(void *type_data);
	void *(*create)(obs_data_t *settings, obs_source_t *source);
	void (*destroy)(void *data);
	uint32_t (*get_width)(void *data);
	uint32_t (*get_height)(void *data);
	void (*get_defaults)(obs_data_t *settings);
	obs_properties_t *(*get_properties)(void *data);
	void (*update)(void *data, obs_data_t *settings);
	obs_source_unused_fn activate, deactivate, show, hide, video_tick, video_render, filter_video, filter_audio,
		enum_active_sources, save, load, mouse_click, mouse_move, mouse_wheel, focus, key_click, filter_remove;
	void *type_data;
	void (*free_type_data)(void *type_data);
	obs_source_unused_fn audio_render, enum_all_sources, transition_start, transition_stop, get_defaults2,
		get_properties2, audio_mix;
	int icon_type;
	obs_source_unused_fn media_play_pause, media_restart, media_stop, media_next, media_previous,
		media_get_duration, media_get_time, media_set_time, media_get_state;
	uint32_t version;
	const char *unversioned_id;
	obs_source_unused_fn missing_files, video_get_color_space;
};

struct obs_service_info {
	const char *id;
	const char *(*get_name)(void *type_data);
	void *(*create)(obs_data_t *settings, obs_service_t *service);
	void (*destroy)(void *data);
	void (*activate)(void *data, obs_data_t *settings);
	void (*deactivate)(void *data);
	void (*update)(void *data, obs_data_t *settings);
	void (*get_defaults)(obs_data_t *settings);
	obs_properties_t *(*get_properties)(void *data);
	bool (*initialize)(void *data, obs_output_t *output);
	const char *(*get_url)(void *data);
	const char *(*get_key)(void *data);
	const char *(*get_username)(void *data);
	const char *(*get_password)(void *data);
	bool (*deprecated_1)(void);
	void (*apply_encoder_settings)(void *data, obs_data_t *video_encoder_settings,
				       obs_data_t *audio_encoder_settings);
	void *type_data;
	void (*free_type_data)(void *type_data);
	const char *(*get_output_type)(void *data);
	void (*get_supported_resolutions)(void *data, struct obs_service_resolution **resolutions, size_t *count);
	void (*get_max_fps)(void *data, int *fps);
	void (*get_max_bitrate)(void *data, int *video_bitrate, int *audio_bitrate);
	const char **(*get_supported_video_codecs)(void *data);
	/* ---- appended in libobs 29.1: absent from the 29.0 struct ---- */
	const char *(*get_protocol)(void *data);
	const char **(*get_supported_audio_codecs)(void *data);
	const char *(*get_connect_info)(void *data, uint32_t type);
	bool (*can_try_to_connect)(void *data);
};

/* ---- logging and memory --------------------------------------------------------------------------------------- */
void blog(int log_level, const char *format, ...);
void bfree(void *ptr);
long bnum_allocs(void);
uint64_t os_gettime_ns(void);

/* ---- core, modules, locale ------------------------------------------------------------------------------------ */
uint32_t obs_get_version(void);
const char *obs_get_version_string(void);
bool obs_startup(const char *locale, const char *module_config_path, profiler_name_store_t *store);
bool obs_initialized(void);
void obs_shutdown(void);
int obs_reset_video(struct obs_video_info *ovi);
bool obs_reset_audio(const struct obs_audio_info *oai);
#ifndef _WIN32 /* libobs exports these on Linux and the BSDs only */
void obs_set_nix_platform(enum obs_nix_platform_type platform);
void obs_set_nix_platform_display(void *display);
#endif
int obs_open_module(obs_module_t **module, const char *path, const char *data_path);
bool obs_init_module(obs_module_t *module);
void obs_post_load_modules(void);
lookup_t *obs_module_load_locale(obs_module_t *module, const char *default_locale, const char *locale);
bool text_lookup_getstr(lookup_t *lookup, const char *lookup_val, const char **out);
void text_lookup_destroy(lookup_t *lookup);

/* ---- registration --------------------------------------------------------------------------------------------- */
void obs_register_output_s(const struct obs_output_info *info, size_t size);
void obs_register_service_s(const struct obs_service_info *info, size_t size);
void obs_register_source_s(const struct obs_source_info *info, size_t size);

/* ---- settings (obs_data) -------------------------------------------------------------------------------------- */
obs_data_t *obs_data_create(void);
void obs_data_release(obs_data_t *data);
/* Copies every value of `apply_data` into `target`. */
void obs_data_apply(obs_data_t *target, obs_data_t *apply_data);
const char *obs_data_get_json(obs_data_t *data);
const char *obs_data_get_string(obs_data_t *data, const char *name);
long long obs_data_get_int(obs_data_t *data, const char *name);
bool obs_data_get_bool(obs_data_t *data, const char *name);
void obs_data_set_string(obs_data_t *data, const char *name, const char *val);
void obs_data_set_int(obs_data_t *data, const char *name, long long val);
void obs_data_set_bool(obs_data_t *data, const char *name, bool val);
void obs_data_set_default_string(obs_data_t *data, const char *name, const char *val);
bool obs_data_has_user_value(obs_data_t *data, const char *name);
void obs_data_set_default_int(obs_data_t *data, const char *name, long long val);
void obs_data_set_default_bool(obs_data_t *data, const char *name, bool val);

/* ---- properties (settings UI) --------------------------------------------------------------------------------- */
obs_properties_t *obs_properties_create(void);
void obs_properties_destroy(obs_properties_t *props);
obs_property_t *obs_properties_add_text(obs_properties_t *props, const char *name, const char *description,
					enum obs_text_type type);
obs_property_t *obs_properties_add_int(obs_properties_t *props, const char *name, const char *description, int min,
				       int max, int step);
obs_property_t *obs_properties_add_bool(obs_properties_t *props, const char *name, const char *description);
obs_property_t *obs_properties_add_list(obs_properties_t *props, const char *name, const char *description,
					enum obs_combo_type type, enum obs_combo_format format);
size_t obs_property_list_add_string(obs_property_t *p, const char *name, const char *val);
void obs_property_set_long_description(obs_property_t *p, const char *long_description);
void obs_property_set_description(obs_property_t *p, const char *description);
const char *obs_property_description(obs_property_t *p);
void obs_property_set_enabled(obs_property_t *p, bool enabled);
void obs_property_set_visible(obs_property_t *p, bool visible);
void obs_properties_set_flags(obs_properties_t *props, uint32_t flags);
obs_property_t *obs_properties_get(obs_properties_t *props, const char *property);
obs_property_t *obs_properties_add_group(obs_properties_t *props, const char *name, const char *description,
					 enum obs_group_type type, obs_properties_t *group);
/* Called when the user changes the property in the dialog; true re-reads the properties (descriptions, enabled). */
typedef bool (*obs_property_modified_t)(obs_properties_t *props, obs_property_t *property, obs_data_t *settings);
void obs_property_set_modified_callback(obs_property_t *p, obs_property_modified_t modified);

/* ---- outputs -------------------------------------------------------------------------------------------------- */
obs_output_t *obs_output_create(const char *id, const char *name, obs_data_t *settings, obs_data_t *hotkey_data);
void obs_output_release(obs_output_t *output);
bool obs_output_start(obs_output_t *output);
void obs_output_stop(obs_output_t *output);
void obs_output_force_stop(obs_output_t *output);
bool obs_output_active(const obs_output_t *output);
bool obs_output_reconnecting(const obs_output_t *output);
const char *obs_output_get_name(const obs_output_t *output);
void obs_output_set_video_encoder(obs_output_t *output, obs_encoder_t *encoder);
void obs_output_set_audio_encoder(obs_output_t *output, obs_encoder_t *encoder, size_t idx);
obs_encoder_t *obs_output_get_video_encoder(const obs_output_t *output);
obs_encoder_t *obs_output_get_audio_encoder(const obs_output_t *output, size_t idx);
void obs_output_set_service(obs_output_t *output, obs_service_t *service);
obs_service_t *obs_output_get_service(const obs_output_t *output);
/* A new reference to the output's settings. */
obs_data_t *obs_output_get_settings(const obs_output_t *output);
uint64_t obs_output_get_total_bytes(const obs_output_t *output);
int obs_output_get_total_frames(const obs_output_t *output);
int obs_output_get_frames_dropped(const obs_output_t *output);
float obs_output_get_congestion(obs_output_t *output);
void obs_output_set_last_error(obs_output_t *output, const char *message);
const char *obs_output_get_last_error(obs_output_t *output);
bool obs_output_can_begin_data_capture(const obs_output_t *output, uint32_t flags);
bool obs_output_initialize_encoders(obs_output_t *output, uint32_t flags);
bool obs_output_begin_data_capture(obs_output_t *output, uint32_t flags);
void obs_output_end_data_capture(obs_output_t *output);
void obs_output_signal_stop(obs_output_t *output, int code);
signal_handler_t *obs_output_get_signal_handler(const obs_output_t *output);

/* ---- signals (the headless runner watches an output's "stop" and its code) ------------------------------------ */
typedef void (*signal_callback_t)(void *data, calldata_t *cd);
void signal_handler_connect(signal_handler_t *handler, const char *signal, signal_callback_t callback, void *data);
void signal_handler_disconnect(signal_handler_t *handler, const char *signal, signal_callback_t callback,
			       void *data);
bool calldata_get_data(const calldata_t *data, const char *name, void *out, size_t size);

/* ---- services ------------------------------------------------------------------------------------------------- */
obs_service_t *obs_service_create(const char *id, const char *name, obs_data_t *settings, obs_data_t *hotkey_data);
void obs_service_release(obs_service_t *service);
/* What the service says its servers take (NULL-terminated; the frontend lists encoders by it). */
const char **obs_service_get_supported_video_codecs(const obs_service_t *service);
/* The service's URL and key changed API across versions: obs_service_get_url/get_key exist up to 31 (removed in 32),
 * obs_service_get_connect_info exists from 29.1. The plugin looks them up at run time (dlsym; GetProcAddress on
 * Windows) and never links them, so one binary loads on 29.0 through 32.x. */
typedef const char *(*obs_service_get_url_fn)(const obs_service_t *service);
typedef const char *(*obs_service_get_key_fn)(const obs_service_t *service);
typedef const char *(*obs_service_get_connect_info_fn)(const obs_service_t *service, uint32_t type);
/* libobs 30+ (looked up at run time): the output's video encoder `idx` — 0 is the stream's, 1… the simulcast layers
   OBS 32.1+'s frontend attaches ("Total Layers"). */
typedef obs_encoder_t *(*obs_output_get_video_encoder2_fn)(const obs_output_t *output, size_t idx);
const char *obs_service_get_id(const obs_service_t *service);
obs_data_t *obs_service_get_settings(const obs_service_t *service);
bool obs_enum_service_types(size_t idx, const char **id);

/* ---- encoders ------------------------------------------------------------------------------------------------- */
obs_encoder_t *obs_video_encoder_create(const char *id, const char *name, obs_data_t *settings,
					obs_data_t *hotkey_data);
obs_encoder_t *obs_audio_encoder_create(const char *id, const char *name, obs_data_t *settings, size_t mixer_idx,
					obs_data_t *hotkey_data);
void obs_encoder_release(obs_encoder_t *encoder);
/* A new strong reference to the encoder (NULL if it is being destroyed). */
obs_encoder_t *obs_encoder_get_ref(obs_encoder_t *encoder);
void obs_encoder_set_video(obs_encoder_t *encoder, video_t *video);
void obs_encoder_set_audio(obs_encoder_t *encoder, audio_t *audio);
const char *obs_encoder_get_codec(const obs_encoder_t *encoder);
const char *obs_encoder_get_id(const obs_encoder_t *encoder);
uint32_t obs_encoder_get_caps(const obs_encoder_t *encoder);
/* A new reference to the encoder's settings. */
obs_data_t *obs_encoder_get_settings(const obs_encoder_t *encoder);
/* Applies `settings` (merged into the encoder's) at the encoder's next frame. */
void obs_encoder_update(obs_encoder_t *encoder, obs_data_t *settings);
uint32_t obs_encoder_get_width(const obs_encoder_t *encoder);
/* Has libobs scale the video to this size for the encoder (before it starts). */
void obs_encoder_set_scaled_size(obs_encoder_t *encoder, uint32_t width, uint32_t height);
uint32_t obs_encoder_get_height(const obs_encoder_t *encoder);
uint32_t obs_encoder_get_sample_rate(const obs_encoder_t *encoder);
bool obs_encoder_get_extra_data(const obs_encoder_t *encoder, uint8_t **extra_data, size_t *size);
video_t *obs_get_video(void);
audio_t *obs_get_audio(void);

/* ---- sources and scenes (headless runner) --------------------------------------------------------------------- */
obs_source_t *obs_source_create(const char *id, const char *name, obs_data_t *settings, obs_data_t *hotkey_data);
obs_source_t *obs_source_create_private(const char *id, const char *name, obs_data_t *settings);
void obs_source_release(obs_source_t *source);
obs_scene_t *obs_scene_create(const char *name);
void obs_scene_release(obs_scene_t *scene);
obs_source_t *obs_scene_get_source(const obs_scene_t *scene);
obs_sceneitem_t *obs_scene_add(obs_scene_t *scene, obs_source_t *source);
void obs_set_output_source(uint32_t channel, obs_source_t *source);

/* ---- X11 display for the headless runner (libX11) ------------------------------------------------------------- */
#ifndef _WIN32
void *XOpenDisplay(const char *display_name);
int XCloseDisplay(void *display);
#endif

/* ---- the OBS frontend API (libobs-frontend-api), looked up at run time ---------------------------------------- */
/* Only the `obs` frontend loads libobs-frontend-api; other libobs hosts do not have it. The plugin never links it:
 * it asks the loader whether the library is already in the process (RTLD_NOLOAD; Windows: GetModuleHandleA) and
 * looks the functions up by name. Each `<name>_fn` type is the signature of the frontend function `<name>` of
 * OBS 29.0. */
#ifndef _WIN32 /* the dynamic loader of libc; on Windows the plugin asks kernel32 (plugin/obs/loader.rs) */
#define RTLD_LAZY 0x00001
#define RTLD_NOLOAD 0x00004
void *dlopen(const char *filename, int flags);
void *dlsym(void *handle, const char *symbol);
int dlclose(void *handle);
#endif

typedef void (*obs_frontend_cb)(void *private_data);
typedef void (*obs_frontend_add_tools_menu_item_fn)(const char *name, obs_frontend_cb callback, void *private_data);
typedef obs_service_t *(*obs_frontend_get_streaming_service_fn)(void);
typedef void (*obs_frontend_set_streaming_service_fn)(obs_service_t *service);
typedef void (*obs_frontend_save_streaming_service_fn)(void);
typedef bool (*obs_frontend_streaming_active_fn)(void);
/* Opens OBS's own properties dialog for a source (non-modal; it keeps a reference to the source). */
typedef void (*obs_frontend_open_source_properties_fn)(obs_source_t *source);
