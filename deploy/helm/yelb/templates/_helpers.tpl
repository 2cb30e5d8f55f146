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

{{/* The restricted pod security profile: (dict "root" $ "uid" N "gid" N
"fsGroup" N), gid and fsGroup optional. With openshift=true no IDs at all:
the restricted SCC assigns them from the namespace's range (and refuses a
pod that names its own). */}}
{{- define "yelb.podSecurity" -}}
runAsNonRoot: true
seccompProfile: {type: RuntimeDefault}
{{- if not .root.Values.openshift }}
runAsUser: {{ .uid }}
{{- if hasKey . "gid" }}
runAsGroup: {{ .gid }}
{{- end }}
{{- if hasKey . "fsGroup" }}
fsGroup: {{ .fsGroup }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Where every pod may run, and the pull secrets: the scheduling values,
at the level of a pod spec's fields. */}}
{{- define "yelb.podScheduling" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.scheduling.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.scheduling.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.scheduling.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.scheduling.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
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
