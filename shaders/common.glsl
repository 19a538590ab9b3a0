// The vertex stage of every pass, and helpers prepended to every pass's fragment
// shader (a pass file is a fragment shader; its line numbers in error messages are
// its own: the compositor resets them with #line).
//
// Every pass may declare and read these; undeclared ones are simply not set:
//   uniform sampler2D u_input;            the previous pass (the generated frame for the first)
//   uniform vec2 u_input_resolution;      its size in px
//   uniform sampler2D u_source;           the generated frame
//   uniform vec2 u_source_resolution;     its size in px
//   uniform sampler2D u_prev;             this pass's own output last frame (feedback)
//   uniform vec2 u_resolution;            this pass's output size in px (the canvas)
//   uniform float u_time;                 the frame's time in seconds
// A pass's own uniforms are mapping targets when annotated on their line:
//   uniform float u_NAME;  // DEFAULT [MIN, MAX] what it does
// and become `shader.EFFECT.NAME`.

#if defined VERTEX_SHADER
// A fullscreen triangle from gl_VertexID alone: no vertex buffer needed.
out vec2 v_uv;
void main() {
    vec2 p = vec2((gl_VertexID << 1) & 2, gl_VertexID & 2);
    v_uv = p;
    gl_Position = vec4(p * 2.0 - 1.0, 0.0, 1.0);
}
#endif

#if defined FRAGMENT_SHADER
in vec2 v_uv;
out vec4 f_color;

// Where to sample a src_px-sized image so it fills dst_px: mode 0 contain
// (letterbox), 1 cover (crop), 2 stretch. Returns uv outside 0..1 in the bars.
vec2 fit_uv(vec2 uv, vec2 src_px, vec2 dst_px, float mode) {
    if (mode >= 1.5) return uv;
    float src_aspect = src_px.x / src_px.y;
    float dst_aspect = dst_px.x / dst_px.y;
    float r = dst_aspect / src_aspect;
    bool wider = r > 1.0;
    vec2 scale = (mode < 0.5) == wider ? vec2(r, 1.0) : vec2(1.0, 1.0 / r);
    return (uv - 0.5) * scale + 0.5;
}

bool inside(vec2 uv) {
    return all(greaterThanEqual(uv, vec2(0.0))) && all(lessThanEqual(uv, vec2(1.0)));
}

vec3 rgb2hsv(vec3 c) {
    vec4 k = vec4(0.0, -1.0 / 3.0, 2.0 / 3.0, -1.0);
    vec4 p = mix(vec4(c.bg, k.wz), vec4(c.gb, k.xy), step(c.b, c.g));
    vec4 q = mix(vec4(p.xyw, c.r), vec4(c.r, p.yzx), step(p.x, c.r));
    float d = q.x - min(q.w, q.y);
    return vec3(abs(q.z + (q.w - q.y) / (6.0 * d + 1e-10)), d / (q.x + 1e-10), q.x);
}

vec3 hsv2rgb(vec3 c) {
    vec3 p = abs(fract(c.xxx + vec3(1.0, 2.0 / 3.0, 1.0 / 3.0)) * 6.0 - 3.0);
    return c.z * mix(vec3(1.0), clamp(p - 1.0, 0.0, 1.0), c.y);
}
#endif
