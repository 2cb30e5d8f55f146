{{/* An image reference: <registry>/<name>:<tag>. */}}
{{- define "yelb.image" -}}
{{- $root := index . 0 -}}{{- $name := index . 1 -}}
{{- $tag := $root.Values.image.tag | default $root.Chart.AppVersion -}}
{{- if $root.Values.image.registry -}}
{{ printf "%s/%s:%s" (trimSuffix "/" $root.Values.image.registry) $name $tag }}
{{- else -}}
{{ printf "%s:%s" $name $tag }}
{{- end -}}
{{- end -}}

{{/* The Secret holding the Postgres password (key: password). */}}
{{- define "yelb.dbSecret" -}}
{{- .Values.db.existingSecret | default "yelb-db" -}}
{{- end -}}

{{/* The page's public URL for the QR code, if one can be said. */}}
{{- define "yelb.publicUrl" -}}
{{- if .Values.ui.publicUrl -}}
{{ .Values.ui.publicUrl }}
{{- else if .Values.ingress.enabled -}}
{{ printf "%s://%s/" (ternary "https" "http" (ne .Values.ingress.tlsSecretName "")) .Values.ingress.host }}
{{- end -}}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "yelb.labels" -}}
app.kubernetes.io/part-of: yelb
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The restricted pod security profile, for a given UID. */}}
{{- define "yelb.podSecurity" -}}
runAsNonRoot: true
runAsUser: {{ . }}
seccompProfile: {type: RuntimeDefault}
{{- end -}}

{{- define "yelb.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities: {drop: ["ALL"]}
{{- end -}}

{{/* The Secret holding the Redis password (key: password), with auth on. */}}
{{- define "yelb.cacheSecret" -}}
{{- .Values.cache.auth.existingSecret | default "yelb-cache" -}}
{{- end -}}
